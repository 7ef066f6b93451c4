"""Python's cyclic garbage collector around netspec's bulk work.

Loading a spec, building its network and importing torch and Lightning each create hundreds of
thousands of objects that live as long as the process. A collection finds no garbage among them
but scans them all: ``netspec train`` made seven full collections of a growing heap during its
imports (0.6–0.7 s), and the interpreter's teardown four more (1.2 s). Pausing the collector
while they are made and freezing them (``gc.freeze``: later collections skip them) saves that
work; each context puts the collector back as it found it, so a notebook or a test is unaffected.
"""

from __future__ import annotations

import functools
import gc
import importlib
from collections.abc import Callable, Iterator
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
def frozen_heap(*imports: str) -> Iterator[None]:
    """``imports`` made with the collector paused, then everything alive left out of collections
    inside (they scan only what the run allocates); unfrozen on exit.

    The freeze comes before the collector is back on: objects made while it was paused wait in
    the youngest generation, and the first collection after would scan them all (0.2 s after
    Lightning's import). A heap someone else froze (a server before it forks), or a collector
    that is off, is left alone; the imports are still made.
    """
    freezing = gc.isenabled() and not gc.get_freeze_count()
    with gc_paused():
        for name in imports:
            importlib.import_module(name)
        if freezing:
            gc.freeze()
    try:
        yield
    finally:
        if freezing:
            gc.unfreeze()


def frozen_while(*imports: str) -> Callable:
    """Decorator: the call runs inside ``frozen_heap(*imports)``."""

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def call(*args, **kwargs):
            with frozen_heap(*imports):
                return fn(*args, **kwargs)

        return call

    return wrap


def freeze_for_exit() -> None:
    """The process is ending: its teardown's collections (one per stage of clearing the modules)
    would each scan every object torch and Lightning left, for nothing."""
    gc.freeze()
