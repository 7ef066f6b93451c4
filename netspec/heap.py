"""Python's cyclic garbage collector around netspec's bulk work.

Loading a spec, building its network and importing torch and Lightning each create hundreds of
thousands of objects that live as long as the process. A collection in the middle finds no
garbage among them but scans them all: six full collections of a growing heap during the
imports of ``netspec train``, and one more whenever a run's allocations add up. Pausing the
collector while they are made, and freezing them (``gc.freeze``) while a run trains, skips that
work; both put the collector back as they found it, so a notebook or a test is unaffected.
"""

from __future__ import annotations

import gc
import importlib
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """No collection inside; restored as it was, even on an error."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextmanager
def frozen_heap() -> Iterator[None]:
    """Everything alive on entry is left out of collections inside (they scan only what the run
    allocates); unfrozen on exit. A heap someone else froze (a server before it forks) is left
    alone, as is a collector that is off."""
    if gc.get_freeze_count() or not gc.isenabled():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def import_paused(name: str) -> None:
    """A heavy package (torch: ~1.5 s, three full collections; Lightning: ~4 s more, three
    more) imported with the collector paused."""
    with gc_paused():
        importlib.import_module(name)
