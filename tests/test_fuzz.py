"""Hostile input is normal input: mutated specs and hostile YAML either load or fail as a located SpecError.

A seeded mutator rewrites the shipped specs (text edits, hostile values, swapped layer types,
odd shapes) and adds hand-made hostile YAML. Every case is loaded from a file and, when it
loads, summarised and run on the meta device (shapes only, nothing allocated). The contract:

- a failure is a :class:`netspec.SpecError` whose every problem names the file and a line;
- nothing else escapes (no RecursionError, KeyError, OverflowError, plugin "crash", ...);
- no case takes more than a few seconds.

The quick form runs with the suite; ``pytest -m slow tests/test_fuzz.py`` runs thousands.
"""

from __future__ import annotations

import copy
import random
import signal
import time
import warnings
from pathlib import Path

import pytest
import torch
import yaml
from conftest import SPECS

import netspec
from netspec.plugins import default_registry
from netspec.summary import summarize
from netspec.yamlio import MAX_BYTES

SECONDS_PER_CASE = 5.0
QUICK_CASES = 200
SLOW_CASES = 3000

NUMBERS = [0, -1, 1, 2, 3, 7, 2**31, 2**63, 10**30, 1e308, -1e308, 1e-320, 0.5, 1e40, "1e40"]
NUMBERS += [float("inf"), float("-inf"), float("nan"), True, None, "", "x", [], {}, [1, 2, 3, 4], [0]]
CHARS = [*"[]{}:,-&*!|>'\"\n\t #%@`?<=", "\x00", "\x07", "\x1b", "\ufeff", "é", "\u2028"]
TOKENS = [
    "&a ",
    "*a",
    "!!int ",
    "!!bool ",
    "!!float ",
    "!!str ",
    "!!binary ",
    "!!python/none ",
    "<<: ",
    "---\n",
]

FRAGMENTS = ["[", "]", "{", "}", "a: ", "- ", "&x ", "*x", "---\n", "? ", "1,", "\n", "  ", "!!int "]
FRAGMENTS += ["<<: *x\n", "#c\n", "'", '"', "b", ", ", "x: &x {y: 1}\n", "...\n", "%YAML 1.1\n"]
FRAGMENTS += ["|\n", ">-\n"]

HOSTILE = [
    "",
    "\n",
    "- 1\n",
    "just a string\n",
    "input: [1, 28, 28]\nlayers: &l [*l]\n",
    "a: &a [*a]\n",
    "a: &a {<<: *a}\n",
    "input: !!int abc\nlayers: []\n",
    "input: [1, 8]\nlayers:\n  - {type: relu, name: !!bool maybe}\n",
    "input: [" + "9" * 5000 + "]\nlayers: [{type: relu}]\n",
    "input: [1, 8]\nlayers: [{type: relu}]\nname: a\x00b\n",
    'input: [1, 8]\nlayers: [{type: relu}]\ndescription: "\\e[2J"\n',
    'input: [1, 8]\nlayers: [{type: relu}]\ndescription: "\\ud800"\n',
    "input: [1, 8]\nlayers: [{type: relu}]\n" + "x: " + "[" * 200 + "]" * 200 + "\n",
    "input: [1, 8]\nlayers: [" + ",".join(["{type: relu}"] * 1_000) + "]\n",  # was quadratic in resolve
    "input: [" + ",".join(["1"] * 20_000) + "]\nlayers: [{type: relu}]\n",
    "input: [1, 1000000000]\nlayers:\n  - {type: maxpool, name: p, kernel_size: 2}\n"
    "  - {type: unpool, indices: p}\n",
    "input: [1, 1000000000]\nlayers: [{type: upsample, size: 3, mode: area}]\n",
    "input: [1, 1000000000]\nlayers: [{type: adaptive_avgpool, output_size: 999999937}]\n",
    "input: [1, 8]\nlayers: [{type: upsample, scale_factor: .inf}]\n",
    "input: [4]\nlayers: [{type: linear, out_features: 4}]\nexpect: {output: []}\n",
    "input: [1, 8]\nlayers:\n  - {type: relu}\n  - {type: relu}\n  - type: relu\n    type: relu\n",
    "a0: &a0 [1]\n" + "".join(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]\n" for i in range(1, 9)),
    "\ufeffinput: [1]\nlayers: [{type: relu}]\n",
    "---\na\n" * 70_000,  # more parse events than nodes: hung the fast count once
]


def _alarm(signum, frame):
    raise TimeoutError(f"a case took more than {SECONDS_PER_CASE} s")


def check_case(path: Path) -> str:
    """Load (and summarise) one file; return 'ok' or 'error'; raise AssertionError on a broken contract."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, SECONDS_PER_CASE * 2)  # a hang fails, it does not stall
    start = time.perf_counter()
    try:
        spec = netspec.load(path)
        summarize(spec)
        forward_on_meta(spec)
        outcome = "ok"
    except netspec.SpecError as exc:
        for problem in exc.problems:
            assert problem.source == str(path), f"problem names {problem.source!r}, not the file:\n{exc}"
            assert problem.location is not None, f"problem without a line:\n{exc}"
        outcome = "error"
    except BaseException as exc:  # the point: nothing else escapes
        text = path.read_text(errors="replace")
        raise AssertionError(f"{type(exc).__name__}: {exc}\nfor this spec:\n{text[:2000]}") from exc
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    elapsed = time.perf_counter() - start
    assert elapsed < SECONDS_PER_CASE, f"{elapsed:.1f} s for:\n{path.read_text(errors='replace')[:2000]}"
    return outcome


def forward_on_meta(spec) -> None:
    """Run the built network on the meta device (shapes only, nothing allocated) and compare.

    A spec that loads must also run: this catches shape rules that accept what torch refuses
    (a 32-bit pooling argument, a size that overflows) without allocating a byte.
    """
    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch's performance notes, e.g. 'same' + even kernel
        model = spec.build()
        out = model(torch.empty(2, *spec.input_shape))
    outs = out if isinstance(out, tuple) else (out,)
    assert [tuple(o.shape[1:]) for o in outs] == spec.output_shapes(), "inferred shapes differ from torch's"


class Mutator:
    """Seeded mutations of a spec: on its YAML text, and on its data written back as YAML."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.types = sorted(default_registry().layers)

    def text(self, text: str) -> str:
        rng = self.rng
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(text) + 1)
            kind = rng.randrange(5)
            if kind == 0:
                text = text[:i] + text[i + 1 :]
            elif kind == 1:
                text = text[:i] + rng.choice(CHARS) + text[i:]
            elif kind == 2:
                text = text[:i] + rng.choice(TOKENS) + text[i:]
            elif kind == 3:
                lines = text.splitlines(keepends=True)
                j = rng.randrange(len(lines))
                lines.insert(rng.randrange(len(lines) + 1), lines[j])
                text = "".join(lines)
            else:
                text = text[:i]
        return text

    def data(self, data: dict) -> dict:
        rng = self.rng
        data = copy.deepcopy(data)
        layers = data.get("layers") or [{}]
        for _ in range(rng.randint(1, 3)):
            layer = rng.choice(layers)
            kind = rng.randrange(6)
            if kind == 0 and layer:  # a hostile value for an existing parameter
                layer[rng.choice(sorted(layer))] = rng.choice(NUMBERS)
            elif kind == 1:  # another layer type with the same parameters
                layer["type"] = rng.choice(self.types)
            elif kind == 2:  # an odd input shape
                data["input"] = [
                    rng.choice([1, 2, 3, 5, 7, 64, 10**6, 10**9]) for _ in range(rng.randint(1, 5))
                ]
            elif kind == 3 and layer:
                del layer[rng.choice(sorted(layer))]
            elif kind == 4:
                layers.insert(rng.randrange(len(layers) + 1), copy.deepcopy(rng.choice(layers)))
            else:  # a parameter that belongs to some other layer type
                other = rng.choice(layers)
                if other:
                    key = rng.choice(sorted(other))
                    layer[key] = rng.choice([other[key], *NUMBERS[:8]])
        return data

    def repeated(self) -> str:
        """Up to a megabyte of a few YAML fragments repeated: where limits and fast paths break."""
        rng = self.rng
        out = []
        for _ in range(rng.randint(1, 3)):
            fragment = "".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(1, 4)))
            out.append(fragment * rng.choice([1, 10, 1000, 30_000, 100_000]))
        return "".join(out)[:MAX_BYTES]

    def example(self) -> dict:
        """A registry example with its last layer's values and the input shape redrawn."""
        rng = self.rng
        record = default_registry()[rng.choice(self.types)]
        data = copy.deepcopy(rng.choice(record.examples))
        layer = data["layers"][-1]
        values = [0, 1, 2, 3, 5, -1, 2**31, 10**9, 2**62, [1, 2], [3, 3, 3], [2, None], "same", True, 0.5]
        for key in sorted(layer):
            if key not in ("type", "name", "from", "indices") and rng.random() < 0.5:
                layer[key] = rng.choice(values)
        if rng.random() < 0.5:
            rank = rng.randint(1, 5)
            data["input"] = [rng.choice([1, 2, 3, 4, 7, 16, 10**6, 2**40]) for _ in range(rank)]
        return data


def cases(count: int, seed: int, tmp_path: Path) -> list[Path]:
    """``count`` files: the hostile texts, then mutations of the shipped specs and examples, seeded."""
    mutator = Mutator(seed)
    sources = [path.read_text() for path in SPECS]
    texts = list(HOSTILE)
    while len(texts) < count:
        source = mutator.rng.choice(sources)
        roll = mutator.rng.random()
        if roll < 0.05:
            texts.append(mutator.repeated())
        elif roll < 0.35:
            texts.append(mutator.text(source))
        elif roll < 0.65:
            texts.append(yaml.safe_dump(mutator.example(), sort_keys=False))
        else:
            data = yaml.safe_load(source)
            texts.append(yaml.safe_dump(mutator.data(data), sort_keys=False, allow_unicode=True))
    paths = []
    for i, text in enumerate(texts[:count]):
        path = tmp_path / f"case{i}.yaml"
        path.write_bytes(text.encode("utf-8", "surrogateescape"))
        paths.append(path)
    return paths


def run(count: int, seed: int, tmp_path: Path) -> dict[str, int]:
    forward_on_meta(netspec.load({"input": [1, 4], "layers": [{"type": "relu"}]}))  # imports are not a case
    outcomes = {"ok": 0, "error": 0}
    for path in cases(count, seed, tmp_path):
        outcomes[check_case(path)] += 1
    return outcomes


def test_fuzz_quick(tmp_path):
    """Part of every run: the hostile texts and ~170 seeded mutations, in well under 20 s."""
    start = time.perf_counter()
    outcomes = run(QUICK_CASES, seed=11, tmp_path=tmp_path)
    assert outcomes["ok"] > 10 and outcomes["error"] > 50, outcomes  # the mutator reaches both sides
    assert time.perf_counter() - start < 60


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4))
def test_fuzz_slow(tmp_path, seed):
    """``pytest -m slow tests/test_fuzz.py``: thousands of mutations per seed."""
    run(SLOW_CASES, seed=1000 + seed, tmp_path=tmp_path)
