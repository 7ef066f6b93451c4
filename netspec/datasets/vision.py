"""``mnist``, ``fashion_mnist`` and ``cifar10`` from their standard files, without torchvision.

People usually have these files already (torchvision's ``MNIST/raw`` layout, or the plain
downloads), so the loaders look for them in the usual places and never touch the network unless
the spec says ``download: true``. The idx format is parsed with numpy; CIFAR-10's pickled batches
go through an unpickler that only admits numpy arrays, so a planted file cannot run code. Images
are resized and converted (grey ↔ RGB) to the spec's input, scaled to [0, 1] and standardised
with the training split's statistics; the official test set is the test split.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, StrictBool

from netspec.data import DataContext, DataError, DatasetParams, DatasetType, Splits
from netspec.hookspecs import hookimpl

ENV_DATA = "NETSPEC_DATA"  # a directory searched for dataset files (after an explicit root)
TIMEOUT = 30  # seconds per download request
IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_FILES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch")
CIFAR_ARCHIVE = "cifar-10-python.tar.gz"

# Published MD5 checksums of the standard downloads (the ones torchvision checks).
MD5 = {
    ("mnist", "train-images-idx3-ubyte.gz"): "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    ("mnist", "train-labels-idx1-ubyte.gz"): "d53e105ee54ea40749a09fcbcd1e9432",
    ("mnist", "t10k-images-idx3-ubyte.gz"): "9fb629c4189551a2d022fa330f9573f3",
    ("mnist", "t10k-labels-idx1-ubyte.gz"): "ec29112dd5afa0611ce80d1b7f02629c",
    ("fashion_mnist", "train-images-idx3-ubyte.gz"): "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    ("fashion_mnist", "train-labels-idx1-ubyte.gz"): "25c81989df183df01b3e8a0aad5dffbe",
    ("fashion_mnist", "t10k-images-idx3-ubyte.gz"): "bef4ecab320f06d8554ea6380940ec79",
    ("fashion_mnist", "t10k-labels-idx1-ubyte.gz"): "bb300cfdad3c16e7a12a480ee83cd310",
    ("cifar10", CIFAR_ARCHIVE): "c58f30108f718f92721af3b95e74349a",
}


@dataclass(frozen=True)
class Source:
    """Where one dataset's files live locally (folders under a root, first = download target)
    and the public mirrors that serve them."""

    name: str
    folders: tuple[str, ...]
    files: tuple[str, ...]
    mirrors: tuple[str, ...]


SOURCES = {
    "mnist": Source(
        "mnist",
        ("MNIST/raw", "mnist", ""),
        IDX_FILES,
        (
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
    ),
    "fashion_mnist": Source(
        "fashion_mnist",
        ("FashionMNIST/raw", "fashion_mnist", "fashion-mnist", ""),
        IDX_FILES,
        (
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        ),
    ),
    "cifar10": Source(
        "cifar10",
        (CIFAR_FOLDER, ""),
        CIFAR_FILES,
        ("https://www.cs.toronto.edu/~kriz/",),
    ),
}


class VisionParams(DatasetParams):
    """A standard vision dataset read from its usual files (downloaded only when asked)."""

    root: str | None = Field(
        None, description=f"Directory holding the files (default: data_dir; also ${ENV_DATA})."
    )
    download: StrictBool = Field(False, description="Fetch missing files from the public mirrors.")
    normalize: StrictBool = Field(True, description="Standardise with the training split's mean and std.")


def roots(p: VisionParams, ctx: DataContext) -> list[Path]:
    """An explicit ``root``; otherwise ``$NETSPEC_DATA`` (when set) and ``data_dir``."""
    candidates = [p.root] if p.root is not None else [os.environ.get(ENV_DATA, ""), str(ctx.data_dir)]
    out: list[Path] = []
    for c in candidates:
        path = Path(os.path.expanduser(c)).absolute() if c else None
        if path is not None and path not in out:
            out.append(path)
    return out


def _present(directory: Path, name: str, gz: bool) -> Path | None:
    for candidate in (directory / name, directory / f"{name}.gz") if gz else (directory / name,):
        if candidate.is_file():
            return candidate
    return None


def find_files(source: Source, search: list[Path]) -> tuple[dict[str, Path] | None, list[str]]:
    """The first folder holding every file (idx files may be .gz), or None and what each lacked."""
    gz = source.name != "cifar10"
    looked = []
    for root in search:
        for folder in source.folders:
            directory = root / folder if folder else root
            found = {name: _present(directory, name, gz) for name in source.files}
            if all(found.values()):
                return found, looked  # type: ignore[return-value]
            missing = [n for n, f in found.items() if f is None]
            note = f" (has {len(found) - len(missing)} of {len(found)}; missing {', '.join(missing)})"
            looked.append(f"{directory}{note if len(missing) < len(found) else ''}")
    return None, looked


def file_urls(source: Source) -> list[str]:
    """What to download by hand: each file from the first mirror (the CIFAR archive, for cifar10)."""
    names = [CIFAR_ARCHIVE] if source.name == "cifar10" else [f"{name}.gz" for name in source.files]
    return [source.mirrors[0] + name for name in names]


def missing_error(source: Source, search: list[Path], looked: list[str]) -> DataError:
    """Which files, every directory searched (absolute) and how to get them."""
    names = ", ".join(source.files) + (" (each may also be .gz)" if source.name != "cifar10" else "")
    urls = "".join(f"    {url}\n" for url in file_urls(source))
    if source.name == "cifar10":
        place = (
            f"and unpack {CIFAR_ARCHIVE} so that {search[0] / CIFAR_FOLDER} holds them "
            f"(tar xzf {CIFAR_ARCHIVE} -C {search[0]})"
        )
    else:
        place = f"and put them in {search[0] / source.folders[0]}"
    partial = any(" (has " in folder for folder in looked)  # some files found, not all in one folder
    return DataError(
        f"dataset {source.name!r}: files not found{' together in one folder' if partial else ''}: {names}\n"
        "  looked in:\n" + "".join(f"    {d}\n" for d in looked) + "  to get them: set `download: true` "
        f"in train.data (or --set train.data.download=true) on a machine with internet, or download\n{urls}"
        f"  {place}; or point `root:` or ${ENV_DATA} at the directory holding them"
    )


def files_text(source: Source, what: str) -> str:
    """``DatasetType.files`` (``netspec datasets``): the files, where they are looked for, how to get them."""
    gz = source.name != "cifar10"
    folders = ", ".join(f"DATA_DIR/{f}" if f else "DATA_DIR itself" for f in source.folders)
    if gz:
        get = f"or download these into DATA_DIR/{source.folders[0]}:"
    else:
        get = f"or download this and unpack it (tar xzf {CIFAR_ARCHIVE} -C DATA_DIR):"
    return "\n".join(
        [
            f"{what} in DATA_DIR/{source.folders[0]}, DATA_DIR being --data-dir (default data/), "
            f"`root:` or ${ENV_DATA}; `download: true` fetches them",
            "files: " + ", ".join(source.files) + (" (each may also be gzipped: NAME.gz)" if gz else ""),
            f"looked for in: {folders} (the first folder holding all of them wins)",
            f"DATA_DIR: `root:` when given; otherwise ${ENV_DATA} (when set), then --data-dir "
            "(default: data/ in the working directory)",
            "to get them: set `download: true` (or --set train.data.download=true) on a machine with "
            f"internet, which also checks their MD5 sums; {get}",
            *(f"    {url}" for url in file_urls(source)),
            *(f"    (mirror: {m})" for m in source.mirrors[1:]),
        ]
    )


def download(source: Source, target: Path) -> None:
    """Fetch the missing files of ``source`` into ``target`` (a root), verifying their checksums."""
    if source.name == "cifar10":
        archive = target / CIFAR_ARCHIVE
        if not archive.is_file():
            fetch(source, CIFAR_ARCHIVE, archive)
        extract_cifar(archive, target / CIFAR_FOLDER)
        return
    directory = target / source.folders[0]
    for name in source.files:
        if _present(directory, name, gz=True) is None:
            fetch(source, f"{name}.gz", directory / f"{name}.gz")


def fetch(source: Source, filename: str, dest: Path) -> None:
    """Try each mirror in turn; a DataError listing every attempt when none delivers the file."""
    import urllib.request

    expected = MD5.get((source.name, filename))
    errors = []
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(
            f"dataset {source.name!r}: cannot create {dest.parent}: {exc.strerror or exc}"
        ) from None
    part = dest.with_name(dest.name + ".part")
    for mirror in source.mirrors:
        url = mirror + filename
        try:
            digest = hashlib.md5(usedforsecurity=False)
            request = urllib.request.Request(url, headers={"User-Agent": "netspec"})
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response, part.open("wb") as out:
                while chunk := response.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
            if expected is not None and digest.hexdigest() != expected:
                raise ValueError(f"checksum mismatch (md5 {digest.hexdigest()}, expected {expected})")
            part.replace(dest)
            return
        except Exception as exc:  # network, HTTP or checksum: try the next mirror
            errors.append(f"    {url}: {exc}")
        finally:
            part.unlink(missing_ok=True)
    raise DataError(
        f"dataset {source.name!r}: could not download {filename}:\n" + "\n".join(errors) + "\n"
        f"  download it on a machine with internet and copy it to {dest}"
    )


def extract_cifar(archive: Path, folder: Path) -> None:
    """Copy the batch files out of the archive by name (no paths from the archive are used)."""
    import tarfile

    wanted = {*CIFAR_FILES, "batches.meta"}
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar.getmembers():
                base = member.name.rsplit("/", 1)[-1]
                if member.isfile() and base in wanted:
                    stream = tar.extractfile(member)
                    if stream is not None:
                        (folder / base).write_bytes(stream.read())
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"dataset 'cifar10': cannot unpack {archive}: {exc}; delete it and retry") from exc


# idx: 2 zero bytes, a type code, the number of dims, then each dim as big-endian uint32.
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> Any:
    """An idx file (optionally gzipped) as a numpy array."""
    import numpy as np

    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                data = f.read()
        else:
            data = path.read_bytes()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    if not data:
        raise DataError(f"{path} is empty (an idx file was expected; download it again)")
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_TYPES:
        raise DataError(f"{path} is not an idx file (bad magic number {data[:4].hex() or 'none'})")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path} is truncated (header of {ndim} dims)")
    dims = [int(d) for d in np.frombuffer(data, ">u4", ndim, offset=4)]
    dtype = np.dtype(IDX_TYPES[data[2]])
    count = int(np.prod(dims))
    if len(data) != header + count * dtype.itemsize:
        raise DataError(
            f"{path} holds {len(data) - header} bytes of data; its header {dims} needs "
            f"{count * dtype.itemsize}: the file is truncated or corrupt"
        )
    return np.frombuffer(data, dtype, count, offset=header).astype(dtype.newbyteorder("=")).reshape(dims)


def read_idx_set(files: dict[str, Path], prefix: str) -> tuple[Any, Any]:
    images = read_idx(files[f"{prefix}-images-idx3-ubyte"])
    labels = read_idx(files[f"{prefix}-labels-idx1-ubyte"])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(
            f"{files[f'{prefix}-images-idx3-ubyte']}: images {list(images.shape)} and labels "
            f"{list(labels.shape)} do not match; expected [N, H, W] and [N]"
        )
    return images[:, None], labels


class _NumpyOnly(pickle.Unpickler):
    """Unpickles numpy arrays and plain containers only; any other global is refused."""

    def find_class(self, module: str, name: str) -> Any:
        import codecs

        import numpy as np

        core = ("numpy.core", "numpy._core")  # numpy 1 and 2 spell these modules differently
        allowed = {
            **{(f"{c}.multiarray", "_reconstruct"): np.ndarray((0,)).__reduce__()[0] for c in core},
            **{(f"{c}.multiarray", "scalar"): np.int64(0).__reduce__()[0] for c in core},
            **{(f"{c}.numeric", "_frombuffer"): np.ndarray((1,)).__reduce_ex__(5)[0] for c in core},
            ("numpy", "ndarray"): np.ndarray,
            ("numpy", "dtype"): np.dtype,
            ("_codecs", "encode"): codecs.encode,
        }
        if (module, name) in allowed:
            return allowed[module, name]
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch")


def read_cifar_batch(path: Path) -> tuple[Any, Any]:
    """One CIFAR-10 batch: (uint8 images [N, 3, 32, 32], int64 labels [N])."""
    import numpy as np

    try:
        with path.open("rb") as f:
            batch = _NumpyOnly(f, encoding="bytes").load()
    except Exception as exc:  # anything a bad pickle raises
        raise DataError(f"cannot read CIFAR-10 batch {path}: {exc}") from exc
    if not isinstance(batch, dict):
        raise DataError(f"{path} holds a {type(batch).__name__}, not a CIFAR-10 batch dict")
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if data is None or labels is None:
        keys = ", ".join(repr(k) for k in batch)
        raise DataError(f"{path} has keys {keys}; a CIFAR-10 batch has b'data' and b'labels'")
    data = np.asarray(data)
    labels = np.asarray(labels, dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise DataError(
            f"{path}: data {data.dtype} {list(data.shape)} with {len(labels)} labels; "
            "a CIFAR-10 batch has uint8 data [N, 3072] and N labels"
        )
    return data.reshape(-1, 3, 32, 32), labels


def read_arrays(source: Source, files: dict[str, Path]) -> tuple[Any, Any, Any, Any]:
    """(train images, train labels, test images, test labels) as numpy arrays [N, C, H, W], [N]."""
    import numpy as np

    if source.name == "cifar10":
        train = [read_cifar_batch(files[f"data_batch_{i}"]) for i in range(1, 6)]
        test = read_cifar_batch(files["test_batch"])
        x = np.concatenate([b[0] for b in train])
        y = np.concatenate([b[1] for b in train])
        return x, y, test[0], test[1]
    return (*read_idx_set(files, "train"), *read_idx_set(files, "t10k"))


def load_vision(source: Source, p: VisionParams, ctx: DataContext) -> Splits:
    """Official train (minus val_fraction, seeded) / val / official test, fitted to the spec input."""
    import torch

    from netspec.datasets import _common

    shape = _common.image_shape(ctx.input_shape, source.name)
    search = roots(p, ctx)
    for root in search:
        if root.exists() and not root.is_dir():
            origin = "root:" if p.root is not None else f"${ENV_DATA} or --data-dir"
            raise DataError(
                f"dataset {source.name!r}: {root} ({origin}) is a file; it must be the directory that "
                f"holds {source.folders[0] or 'the files'}"
            )
    files, looked = find_files(source, search)
    if files is None and p.download:
        download(source, search[0])
        files, looked = find_files(source, search)
    if files is None:
        raise missing_error(source, search, looked)
    x_train, y_train, x_test, y_test = read_arrays(source, files)
    for y, what in ((y_train, "train"), (y_test, "test")):
        if len(y) and (y.min() < 0 or y.max() > 9):
            where = next(iter(files.values())).parent
            raise DataError(f"dataset {source.name!r}: {what} labels outside 0..9 in {where}")
    images, labels = torch.from_numpy(x_train), torch.from_numpy(y_train).to(torch.int64)
    train, (val,) = _common.random_split(len(images), (p.val_fraction,), ctx.seed, source.name)
    # Split the uint8 images first: indexing them is 4× cheaper than indexing the floats.
    parts = [(_common.fit_images(images[i], shape, scale=255.0), labels[i]) for i in (train, val)]
    parts.append(
        (_common.fit_images(torch.from_numpy(x_test), shape, 255.0), torch.from_numpy(y_test).long())
    )
    normalization = None
    if p.normalize:
        normalization = _common.standardize(parts[0][0], parts[1][0], parts[2][0])
    return _common.pack(
        parts[0], parts[1], parts[2] if len(x_test) else None, num_classes=10, normalization=normalization
    )


def _loader(name: str):
    def load(p: VisionParams, ctx: DataContext) -> Splits:
        return load_vision(SOURCES[name], p, ctx)

    load.__name__ = f"load_{name}"
    return load


@hookimpl
def netspec_register_datasets() -> list[DatasetType]:
    return [
        DatasetType(
            "mnist",
            VisionParams,
            _loader("mnist"),
            summary="MNIST handwritten digits from the standard idx files (60k train, 10k test).",
            files=files_text(SOURCES["mnist"], "the 4 MNIST idx files"),
        ),
        DatasetType(
            "fashion_mnist",
            VisionParams,
            _loader("fashion_mnist"),
            summary="Fashion-MNIST clothing images from the standard idx files (60k train, 10k test).",
            files=files_text(SOURCES["fashion_mnist"], "the 4 Fashion-MNIST idx files"),
        ),
        DatasetType(
            "cifar10",
            VisionParams,
            _loader("cifar10"),
            summary="CIFAR-10 colour images from the python batches (50k train, 10k test).",
            files=files_text(SOURCES["cifar10"], "the 6 CIFAR-10 python batches"),
        ),
    ]
