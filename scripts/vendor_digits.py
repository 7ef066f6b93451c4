"""Write netspec/datasets/data/digits.npz from scikit-learn's copy of the UCI digits.

Run once, by hand, where scikit-learn is installed (netspec itself does not need it):

    python scripts/vendor_digits.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

OUT = Path(__file__).resolve().parent.parent / "netspec" / "datasets" / "data" / "digits.npz"

if __name__ == "__main__":
    bunch = load_digits()
    images, labels = bunch.images, bunch.target
    assert images.shape == (1797, 8, 8) and np.array_equal(images, np.round(images))
    assert images.min() >= 0 and images.max() <= 16 and set(labels.tolist()) == set(range(10))
    np.savez_compressed(OUT, images=images.astype(np.uint8), labels=labels.astype(np.uint8))
    print(f"wrote {OUT} ({OUT.stat().st_size:,} bytes)")
