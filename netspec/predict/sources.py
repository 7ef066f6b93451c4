"""Inputs in batches: image files, one array file, a dataset split; each gives a label per sample
and float32 tensors [n, *input] for any range of its samples, read only when they are needed."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

from netspec.predict.images import read_image


class Source(ABC):
    """Some inputs: a label for each, and batches of them as float32 [n, *input] tensors."""

    kind = ""

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def labels(self, start: int, stop: int) -> list[str]: ...

    @abstractmethod
    def load(self, start: int, stop: int): ...

    def files(self) -> list[Path]:
        """The files it reads (predict must not write over one of them)."""
        return []


class ImageFiles(Source):
    """Image files, standardised like the training images when the checkpoint says how."""

    kind = "images"

    def __init__(self, paths: list[Path], shape: tuple[int, ...], normalization, max_pixels: int):
        self.paths, self.shape, self.normalization = paths, shape, normalization
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.paths)

    def files(self) -> list[Path]:
        return list(self.paths)

    def labels(self, start: int, stop: int) -> list[str]:
        return [str(p) for p in self.paths[start:stop]]

    def load(self, start: int, stop: int):
        import torch

        x = torch.stack([read_image(path, self.shape, self.max_pixels) for path in self.paths[start:stop]])
        if isinstance(self.normalization, tuple):
            mean, std = self.normalization
            x = (x - mean) / std
        return x


class ArrayFile(Source):
    """The samples of an array file (a numpy array, memory-mapped or not, or a tensor), as they are."""

    kind = "arrays"

    def __init__(self, path: Path, data, single: bool):
        self.path, self.data, self.single = path, data, single

    def __len__(self) -> int:
        return 1 if self.single else len(self.data)

    def files(self) -> list[Path]:
        return [self.path]

    def labels(self, start: int, stop: int) -> list[str]:
        if self.single:
            return [str(self.path)]
        return [f"{self.path}[{i}]" for i in range(start, stop)]

    def load(self, start: int, stop: int):
        import numpy as np
        import torch

        chunk = self.data[None] if self.single else self.data[start:stop]
        if isinstance(chunk, torch.Tensor):
            return chunk.to(torch.float32)
        # values beyond float32 become inf, which batches() refuses with a message (no numpy warning)
        with np.errstate(over="ignore", invalid="ignore"):
            return torch.from_numpy(np.array(chunk, dtype=np.float32))


class DatasetSplit(Source):
    """A split of the spec's own dataset, prepared as training prepares it."""

    kind = "split"

    def __init__(self, dataset, name: str):
        self.dataset, self.name = dataset, name

    def __len__(self) -> int:
        return len(self.dataset)

    def labels(self, start: int, stop: int) -> list[str]:
        return [f"{self.name}[{i}]" for i in range(start, stop)]

    def load(self, start: int, stop: int):
        import torch

        ds = self.dataset
        if hasattr(ds, "tensors"):
            x = ds.tensors[0][start:stop]
        elif isinstance(getattr(ds, "x", None), torch.Tensor):
            x = ds.x[start:stop]
        else:
            x = torch.stack([torch.as_tensor(ds[i][0]) for i in range(start, stop)])
        return x.to(torch.float32)
