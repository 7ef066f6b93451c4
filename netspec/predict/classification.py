"""Writes a classification output: the class, its probability and the top k, per input."""

from __future__ import annotations

import json
import math
from collections import Counter

from netspec.predict.writers import Context, Writer, short


class ClassWriter(Writer):
    """predictions.csv and predictions.jsonl: class, its probability and the top k, per input."""

    def __init__(self, task, context: Context):
        super().__init__(task, context)
        self.k = min(context.top_k, task.num_classes or 1)
        self.counts: Counter = Counter()
        self.columns = ["input", "class", "probability", f"top{self.k}"]
        self.csv = self.open_csv(self.columns)
        self.jsonl_path = self.dir / "predictions.jsonl"
        self.jsonl = self.open_files.enter_context(self.jsonl_path.open("w", encoding="utf-8"))
        self.files.append(self.jsonl_path)

    def header(self) -> list[str]:
        return self.columns

    def add(self, index, labels, names, x, y) -> None:
        binary = self.task.loss == "bce_with_logits"
        probs = y.sigmoid() if binary else y.softmax(dim=1)
        values, classes = probs.topk(self.k, dim=1)
        for label, top_p, top_c in zip(labels, values.tolist(), classes.tolist(), strict=True):
            self.counts[top_c[0]] += 1
            top = " ".join(f"{c}:{p:.4f}" for c, p in zip(top_c, top_p, strict=True))
            self.csv.writerow([label, top_c[0], f"{top_p[0]:.6g}", top])
            record = {
                "input": label,
                "class": top_c[0],
                "probability": _json_number(top_p[0]),
                "top_k": [
                    {"class": c, "probability": _json_number(p)} for c, p in zip(top_c, top_p, strict=True)
                ],
            }
            self.jsonl.write(json.dumps(record) + "\n")
            self.keep([short(label), str(top_c[0]), f"{top_p[0]:.3f}", top])

    def title(self) -> str:
        counts = ", ".join(f"{c}: {n}" for c, n in sorted(self.counts.items()))
        return f"{super().title()} ({self.task.num_classes} classes; predicted {counts})"


def _json_number(value: float) -> float | None:
    """NaN is not JSON (``json.dumps`` writes it all the same): a NaN output's probability is null."""
    return value if math.isfinite(value) else None
