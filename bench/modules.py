"""Built vs hand-written module: forward+backward time of ``spec.build()`` vs the same net by hand.

LeNet-5, ResNet-18 and the U-Net, each written by hand with the built module's ``state_dict``
keys, so the built weights load into it with ``strict=True`` and both compute the same thing
(checked before timing). Per round each side runs ``iters`` forward+backward passes on the same
input; the sides alternate which goes first; ratio = built / hand time per round (1.00: no cost).
Eager and ``torch.compile`` (inductor) in fp32; on a GPU also bf16 autocast with
channels_last. ``--quick`` compiles LeNet only, with the ``eager`` backend: it checks that the
compile path runs, it does not measure inductor.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

import netspec

from .common import SPECS, interleave, median, ratios, row, skipped

SECTION = "built vs hand-written"


class LeNet(nn.Module):
    """LeNet-5 as one would write it by hand (specs/lenet.yaml's names)."""

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


class _Down(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.pool = nn.MaxPool2d(2)
        self.conv = _double_conv(cin, cout)

    def forward(self, x):
        return self.conv(self.pool(x))


class _Up(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cout, 2, 2)
        self.conv = _double_conv(2 * cout, cout)

    def forward(self, x, skip):
        return self.conv(torch.cat([self.up(x, output_size=skip.shape[-2:]), skip], 1))


class UNet(nn.Module):
    """specs/unet.yaml written by hand (same names, so the same state_dict keys)."""

    def __init__(self, base: int = 16, classes: int = 2):
        super().__init__()
        self.enc1 = _double_conv(1, base)
        self.enc2, self.enc3, self.mid = (
            _Down(base, 2 * base),
            _Down(2 * base, 4 * base),
            _Down(4 * base, 8 * base),
        )
        self.dec3, self.dec2, self.dec1 = (
            _Up(8 * base, 4 * base),
            _Up(4 * base, 2 * base),
            _Up(2 * base, base),
        )
        self.logits = nn.Conv2d(base, classes, 1)

    def forward(self, x):
        s1 = self.enc1(x)
        s2 = self.enc2(s1)
        s3 = self.enc3(s2)
        m = self.mid(s3)
        return self.logits(self.dec1(self.dec2(self.dec3(m, s3), s2), s1))


class BasicBlock(nn.Module):
    def __init__(self, cin, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or cin != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x):
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet18(nn.Module):
    """ResNet-18 as torchvision writes it (same state_dict keys as specs/resnet18.yaml)."""

    def __init__(self, classes: int = 1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin, layers = 64, []
        for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers.append(nn.Sequential(BasicBlock(cin, planes, stride), BasicBlock(planes, planes)))
            cin = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# name, spec file, overrides, hand-written class, (batch, input) full, (batch, input) quick
MODELS = (
    ("LeNet-5", "lenet.yaml", [], LeNet, (64, None), (16, None)),
    ("ResNet-18", "resnet.yaml", ["variant=resnet18"], ResNet18, (4, [3, 224, 224]), (2, [3, 32, 32])),
    ("U-Net", "unet.yaml", [], UNet, (4, None), (1, None)),
)


def _step(model, x, amp):
    model.zero_grad(set_to_none=True)
    with amp():
        out = model(x)
    out.float().sum().backward()


def compare(
    name, spec_file, overrides, hand_cls, batch, shape, *, device, compiled, bf16, quick, rounds, iters
):
    torch.manual_seed(0)
    if shape is not None:
        overrides = [*overrides, f"input={shape}".replace(" ", "")]
    spec = netspec.load(SPECS / spec_file, overrides=overrides)
    built = spec.build().to(device)
    hand = hand_cls().to(device)
    hand.load_state_dict(built.state_dict(), strict=True)
    x = torch.randn(batch, *spec.input_shape, device=device)
    with torch.no_grad():
        built.eval(), hand.eval()
        torch.testing.assert_close(built(x), hand(x))
        built.train(), hand.train()
    fmt = ""
    if bf16:
        built = built.to(memory_format=torch.channels_last)
        hand = hand.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
        fmt = ", bf16 autocast + channels_last"

        def amp():
            return torch.autocast(device, dtype=torch.bfloat16)
    else:
        amp = contextlib.nullcontext
    backend = "eager" if quick else "inductor"
    if compiled:
        built = torch.compile(built, backend=backend)
        hand = torch.compile(hand, backend=backend)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def side(model):
        def run() -> float:
            import time

            sync()
            t0 = time.perf_counter()
            for _ in range(iters):
                _step(model, x, amp)
            sync()
            return (time.perf_counter() - t0) / iters

        return run

    # warm-up: compiles fwd+bwd (twice: the second call may recompile for grads set to None)
    times = interleave({"built": side(built), "hand": side(hand)}, rounds, warmup=2 if compiled else 1)
    mode = f"compiled ({backend})" if compiled else "eager"
    case = f"{name} {mode}, {device}, {'bf16' if bf16 else 'fp32'}"
    print(f"   {case}: built/hand {median(ratios(times['built'], times['hand'])):.3f}", flush=True)
    return row(
        SECTION,
        case,
        median(times["built"]),
        median(times["hand"]),
        "s",
        ratios(times["built"], times["hand"]),
        f"fwd+bwd per step, batch {batch}×{list(spec.input_shape)}{fmt}; built/hand time; same outputs: yes",
    )


def run(quick: bool, gpu_only: bool = False) -> list[dict]:
    rows = []
    cuda = torch.cuda.is_available()
    devices = ["cuda"] if gpu_only else ["cpu", "cuda"] if cuda else ["cpu"]
    for name, spec_file, overrides, hand_cls, full, small in MODELS:
        batch, shape = small if quick else full
        for device in devices:
            b = batch * 16 if device == "cuda" and not quick else batch
            for bf16 in (False, True) if device == "cuda" else (False,):
                for compiled in (False, True):
                    heavy = name != "LeNet-5"
                    if quick and compiled and heavy:  # LeNet covers the compiled path in CI
                        continue
                    rounds = 2 if quick else (5 if heavy else 7)
                    iters = 1 if quick else (2 if heavy and device == "cpu" else 20)
                    rows.append(
                        compare(
                            name,
                            spec_file,
                            overrides,
                            hand_cls,
                            b,
                            shape,
                            device=device,
                            compiled=compiled,
                            bf16=bf16,
                            quick=quick,
                            rounds=rounds,
                            iters=iters,
                        )
                    )
    if not cuda:
        rows.append(skipped(SECTION, "bf16 + channels_last (eager and compiled)", "needs CUDA"))
    return rows
