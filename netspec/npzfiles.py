"""Arrays in a user's ``.npz``, read member by member, each one's header before its data.

A ``.npz`` is a zip archive: a few megabytes of zeros can declare gigabytes of array, and numpy
decompresses a member in full when it is read. So a member's shape and dtype are read from its
``.npy`` header first; what it would take in memory is compared with what the machine has, and
the caller checks keys and shapes before anything is decompressed.
"""

from __future__ import annotations

import contextlib
import math
import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any


class NpzTooLarge(ValueError):
    """A member would need more memory than is available (the message says how much of each)."""


def member_header(archive: zipfile.ZipFile, key: str) -> tuple[tuple[int, ...], Any]:
    """(shape, dtype) of ``key.npy`` in ``archive``, from its header alone (nothing decompressed
    beyond it)."""
    import numpy as np

    with archive.open(f"{key}.npy") as member:
        version = np.lib.format.read_magic(member)
        read = (
            np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        )
        shape, _, dtype = read(member)
    return tuple(shape), dtype


def check_fits_in_memory(shape: tuple[int, ...], dtype: Any, what: str) -> None:
    """Refuse an array larger than the memory available now (Linux; elsewhere nothing is checked)."""
    from netspec.report import human_bytes

    needed = math.prod(shape) * dtype.itemsize
    available = memory_available()
    if available is not None and needed > available:
        raise NpzTooLarge(
            f"{what} is {human_bytes(needed)} when decompressed ({list(shape)} {dtype}), more than the "
            f"{human_bytes(available)} of memory available"
        )


def memory_available() -> int | None:
    """Bytes the kernel says a new allocation can get without swapping (MemAvailable), if known."""
    with contextlib.suppress(OSError, ValueError, IndexError), open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return None


class NpzArrays(Mapping):
    """The arrays of a ``.npz`` by name, each read when first asked for (then kept).

    Its keys are known at once, so a caller can pick (and refuse) by name before any member is
    decompressed; a member is refused when it holds pickled objects or would not fit in memory.
    """

    def __init__(self, path: str | Path, failed: Callable[[str], Exception] = ValueError):
        """``failed(reason)``: the error to raise when the file or a member cannot be read."""
        self.path = Path(path)
        self._failed = failed
        try:
            with zipfile.ZipFile(self.path) as archive:
                names = archive.namelist()
        except (OSError, zipfile.BadZipFile) as exc:
            raise failed(f"cannot read {self.path} as .npz: {exc}") from None
        self._keys = [name.removesuffix(".npy") for name in names if name.endswith(".npy")]
        self._read: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        if key not in self._read:
            if key not in self._keys:
                raise KeyError(key)
            self._read[key] = self._load(key)
        return self._read[key]

    def _load(self, key: str) -> Any:
        import numpy as np

        try:
            with zipfile.ZipFile(self.path) as archive:
                shape, dtype = member_header(archive, key)
                check_fits_in_memory(shape, dtype, f"array {key!r} of {self.path}")
                with archive.open(f"{key}.npy") as member:
                    return np.lib.format.read_array(member, allow_pickle=False)
        except NpzTooLarge as exc:
            raise self._failed(str(exc)) from None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:  # torn, pickled, not .npy
            raise self._failed(f"cannot read {key!r} in {self.path} as .npz: {exc}") from None

    def __contains__(self, key: object) -> bool:  # Mapping's would read the member
        return key in self._keys

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)
