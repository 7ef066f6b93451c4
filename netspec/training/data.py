"""Data for training: in-memory sets batched on the training device, others through DataLoaders."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from netspec.data import DataContext, Splits
from netspec.datasets._common import in_memory

Target = torch.Tensor | dict[str, torch.Tensor]  # one target, or several by name


def take(y: Target, idx: torch.Tensor) -> Target:
    """The rows ``idx`` of a target or of each named target."""
    return {name: t[idx] for name, t in y.items()} if isinstance(y, dict) else y[idx]


def on_device(batch, device: torch.device) -> bool:
    """Is this (x, y) batch on ``device`` already? In-memory data is batched there (TensorBatches):
    Lightning's walk over the batch (apply_to_collection) is then skipped."""
    return isinstance(batch, (tuple, list)) and all(
        isinstance(t, torch.Tensor) and t.device == device for t in batch
    )


class TensorBatches:
    """Shuffled mini-batches straight from tensors: no workers, no collation, no copies.

    The tensors are moved to the training device once. Shuffling and augmentation draw from
    generators seeded by (seed, epoch, batch), and the position in the epoch is saved in
    checkpoints (Lightning calls ``state_dict``), so a resumed run sees exactly the batches an
    uninterrupted one would. Under DDP each rank takes its own slice of every permutation.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: Target,
        batch_size: int,
        *,
        shuffle: bool,
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
        augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
        progress: Callable[[], int] | None = None,
        epoch: Callable[[], int] | None = None,
        drop_last: bool = False,
    ):
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle, self.seed, self.rank, self.world = shuffle, seed, rank, world
        self.augment = augment
        self.drop_last = drop_last  # the last partial batch (kept when it is the only batch)
        self.progress = progress  # batches the trainer has finished in this epoch (for checkpoints)
        self.current_epoch = epoch or (lambda: 0)  # the trainer's epoch: Lightning stops at len(),
        self._skip = 0  # so a generator never learns that its epoch ended
        self.dataset = TensorDataset(x)  # Lightning reads len(dataset) for its progress bar

    def _indices(self) -> torch.Tensor:
        n = len(self.x)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.current_epoch())
            order = torch.randperm(n, generator=g)
        else:
            order = torch.arange(n)
        per_rank = n // self.world if self.world > 1 else n
        return order[self.rank * per_rank : (self.rank + 1) * per_rank] if self.world > 1 else order

    def __len__(self) -> int:
        n = len(self.x) // self.world if self.world > 1 else len(self.x)
        if self.drop_last and n >= self.batch_size:
            return n // self.batch_size
        return -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, Target]]:
        order = self._indices().to(self.x.device)
        epoch = self.current_epoch()
        start, self._skip = self._skip, 0
        for b in range(start, len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            x, y = self.x[idx], take(self.y, idx)
            if self.augment is not None:
                g = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) * 100_003 + b)
                x, y = self.augment(x, y, g)
            yield x, y

    def state_dict(self) -> dict:
        return {"position": self.progress() if self.progress is not None else 0}

    def load_state_dict(self, state: dict) -> None:
        """Resume mid-epoch: skip the batches the trainer had finished when it saved."""
        self._skip = state["position"] if state["position"] < len(self) else 0


def dense(target: torch.Tensor, x: torch.Tensor) -> bool:
    """A target laid out like the input's pixels (a mask, an image to reconstruct): its trailing
    dims are the input's spatial dims, so it must move with them."""
    spatial = tuple(x.shape[2:])
    return (
        bool(spatial) and target.dim() >= 1 + len(spatial) and tuple(target.shape[-len(spatial) :]) == spatial
    )


def make_augment(random_crop: int, hflip: bool, mask_fill: int | None = None) -> Callable | None:
    """Random crop after zero padding, and horizontal flips, per sample, on the batch's device.

    Dense targets (masks, reconstruction targets) get the same crop and flip as their inputs;
    integer masks are padded with ``mask_fill`` (the ignore index: padding is not a class), float
    targets with zeros, as the inputs."""
    if not random_crop and not hflip:
        return None

    def augment(x: torch.Tensor, y: Target, g: torch.Generator) -> tuple[torch.Tensor, Target]:
        n = x.shape[0]
        named = y if isinstance(y, dict) else {None: y}
        moving = {k: t for k, t in named.items() if dense(t, x)}
        if random_crop and x.dim() == 4:
            p = random_crop
            oy = torch.randint(0, 2 * p + 1, (n,), generator=g).to(x.device)
            ox = torch.randint(0, 2 * p + 1, (n,), generator=g).to(x.device)
            x = _crop(x, oy, ox, p, 0.0)
            for k, t in moving.items():
                fill = 0.0 if t.dtype.is_floating_point else mask_fill
                moving[k] = _crop(t, oy, ox, p, fill)
        if hflip:
            flip = (torch.rand(n, generator=g) < 0.5).to(x.device)
            x = torch.where(flip.view(-1, *([1] * (x.dim() - 1))), x.flip(-1), x)
            for k, t in moving.items():
                moving[k] = torch.where(flip.view(-1, *([1] * (t.dim() - 1))), t.flip(-1), t)
        named = {**named, **moving}
        return x, (named if isinstance(y, dict) else named[None])

    return augment


def _crop(t: torch.Tensor, oy: torch.Tensor, ox: torch.Tensor, p: int, fill) -> torch.Tensor:
    """Each sample's [..., H, W] window at (oy, ox) of ``t`` padded by ``p`` with ``fill``."""
    h, w = t.shape[-2:]
    lead = t.shape[1:-2]  # channels, or nothing for an [N, H, W] mask
    flat = t.reshape(t.shape[0], -1, h, w)
    padded = torch.nn.functional.pad(flat, (p, p, p, p), value=fill)
    rows = (oy[:, None] + torch.arange(h, device=t.device))[:, None, :, None]
    cols = (ox[:, None] + torch.arange(w, device=t.device))[:, None, None, :]
    batch = torch.arange(t.shape[0], device=t.device)[:, None, None, None]
    chans = torch.arange(flat.shape[1], device=t.device)[None, :, None, None]
    return padded[batch, chans, rows, cols].reshape(t.shape[0], *lead, h, w)


class SpecDataModule(pl.LightningDataModule):
    """Serves the splits of an already loaded dataset to the Trainer."""

    def __init__(self, splits: Splits, data_cfg, seed: int, drop_last: bool = False):
        super().__init__()
        self.splits = splits
        self.cfg = data_cfg
        self.seed = seed
        self.drop_last = drop_last  # training only (torch.compile: one batch size, no recompiles)
        self._train: TensorBatches | DataLoader | None = None

    def transfer_batch_to_device(self, batch, device: torch.device, dataloader_idx: int):
        if on_device(batch, device):
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def _device(self) -> torch.device:
        return self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")

    def _tensors(self, ds: Dataset) -> tuple[torch.Tensor, Target] | None:
        held = in_memory(ds)
        if held is None:
            return None
        device = self._device()
        x, y = held
        return x.to(device), (
            {k: v.to(device) for k, v in y.items()} if isinstance(y, dict) else y.to(device)
        )

    def _rank_world(self) -> tuple[int, int]:
        if self.trainer is None:
            return 0, 1
        return self.trainer.global_rank, self.trainer.world_size

    def _progress(self) -> int:
        loop = self.trainer.fit_loop.epoch_loop
        return loop.batch_progress.current.processed

    def train_dataloader(self):
        if self._train is None:
            tensors = self._tensors(self.splits.train)
            augment = make_augment(self.cfg.random_crop, self.cfg.hflip, self.splits.ignore_index)
            if tensors is not None:
                rank, world = self._rank_world()
                self._train = TensorBatches(
                    *tensors,
                    self.cfg.batch_size,
                    shuffle=True,
                    seed=self.seed,
                    rank=rank,
                    world=world,
                    augment=augment,
                    progress=self._progress,
                    epoch=lambda: self.trainer.current_epoch if self.trainer is not None else 0,
                    drop_last=self.drop_last,
                )
            else:
                g = torch.Generator().manual_seed(self.seed)
                self._train = DataLoader(
                    self.splits.train,
                    batch_size=self.cfg.batch_size,
                    shuffle=True,
                    num_workers=self.cfg.num_workers,
                    generator=g,
                    drop_last=self.drop_last and len(self.splits.train) >= self.cfg.batch_size,
                    persistent_workers=self.cfg.num_workers > 0,
                )
        return self._train

    def _eval_loader(self, ds: Dataset):
        tensors = self._tensors(ds)
        if tensors is not None:
            rank, world = self._rank_world()
            return TensorBatches(*tensors, self.cfg.batch_size, shuffle=False, rank=rank, world=world)
        return DataLoader(ds, batch_size=self.cfg.batch_size, num_workers=self.cfg.num_workers)

    def val_dataloader(self):
        return self._eval_loader(self.splits.val)

    def test_dataloader(self):
        return self._eval_loader(self.splits.test if self.splits.test is not None else self.splits.val)


def load_splits(registry, data_cfg, input_shape: tuple[int, ...], seed: int, data_dir) -> Splits:
    record = registry.datasets[data_cfg.name]
    own = {k: v for k, v in data_cfg.model_dump().items() if k in record.params.model_fields}
    return record.load(record.params(**own), DataContext(tuple(input_shape), seed, data_dir))
