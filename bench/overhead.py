"""Does a netspec-built network cost anything? Forward+backward time vs the same net by hand.

Runs both side by side (interleaved rounds, same weights, same inputs) and prints the ratio
netspec / hand-written; the target is ≤ 1.02. Usage:

    python bench/overhead.py [--rounds 7] [--iters 30] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from torch import nn

import netspec

SPECS = Path(__file__).resolve().parent.parent / "specs"


class LeNet(nn.Module):
    """LeNet-5 as one would write it by hand (same layer names as specs/lenet.yaml)."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 6, 5, padding=2)
        self.s2 = nn.AvgPool2d(2)
        self.c3 = nn.Conv2d(6, 16, 5)
        self.s4 = nn.AvgPool2d(2)
        self.f5 = nn.Linear(400, 120)
        self.f6 = nn.Linear(120, 84)
        self.output = nn.Linear(84, 10)

    def forward(self, x):
        x = self.s2(torch.sigmoid(self.c1(x)))
        x = self.s4(torch.sigmoid(self.c3(x)))
        x = torch.sigmoid(self.f5(x.flatten(1)))
        return self.output(torch.sigmoid(self.f6(x)))


def _double_conv(cin, cout):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding="same"),
        nn.ReLU(),
        nn.Conv2d(cout, cout, 3, padding="same"),
        nn.ReLU(),
    )


class UNet(nn.Module):
    """specs/unet.yaml written by hand."""

    def __init__(self):
        super().__init__()
        self.enc1, self.enc2, self.enc3 = _double_conv(1, 16), _double_conv(16, 32), _double_conv(32, 64)
        self.mid = _double_conv(64, 128)
        self.up3, self.dec3 = nn.ConvTranspose2d(128, 64, 2, 2, output_padding=1), _double_conv(128, 64)
        self.up2, self.dec2 = nn.ConvTranspose2d(64, 32, 2, 2), _double_conv(64, 32)
        self.up1, self.dec1 = nn.ConvTranspose2d(32, 16, 2, 2), _double_conv(32, 16)
        self.logits = nn.Conv2d(16, 2, 1)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x):
        s1 = self.enc1(x)
        s2 = self.enc2(self.pool(s1))
        s3 = self.enc3(self.pool(s2))
        m = self.mid(self.pool(s3))
        d3 = self.dec3(torch.cat([self.up3(m), s3], 1))
        d2 = self.dec2(torch.cat([self.up2(d3), s2], 1))
        d1 = self.dec1(torch.cat([self.up1(d2), s1], 1))
        return self.logits(d1)


def _copy_weights(src: nn.Module, dst: nn.Module) -> None:
    """Same parameters in the same order → identical computation."""
    with torch.no_grad():
        for a, b in zip(src.parameters(), dst.parameters(), strict=True):
            b.copy_(a)


def _time(model, x, iters, sync):
    start = time.perf_counter()
    for _ in range(iters):
        model.zero_grad(set_to_none=True)
        model(x).sum().backward()
    sync()
    return (time.perf_counter() - start) / iters


def compare(name: str, hand: nn.Module, batch: int, rounds: int, iters: int, device: str) -> float:
    spec = netspec.load(SPECS / f"{name}.yaml")
    built = spec.build().to(device)
    hand = hand.to(device)
    _copy_weights(built, hand)
    x = torch.randn(batch, *spec.input_shape, device=device)
    torch.testing.assert_close(built(x), hand(x))
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for model in (built, hand):  # warm-up
        _time(model, x, 3, sync)
    ratios = []
    for _ in range(rounds):
        t_built = _time(built, x, iters, sync)
        t_hand = _time(hand, x, iters, sync)
        ratios.append(t_built / t_hand)
    ratio = statistics.median(ratios)
    print(
        f"{name:6s} batch {batch:3d}: netspec {t_built * 1e3:7.2f} ms  hand {t_hand * 1e3:7.2f} ms  "
        f"ratio (median of {rounds}) {ratio:.3f}  [min {min(ratios):.3f}, max {max(ratios):.3f}]"
    )
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    torch.manual_seed(0)
    compare("lenet", LeNet(), 64, args.rounds, args.iters, args.device)
    compare("unet", UNet(), 4, args.rounds, max(3, args.iters // 6), args.device)


if __name__ == "__main__":
    main()
