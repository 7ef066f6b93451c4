"""The garbage collector around bulk work: paused while imports, loading and building make
long-lived objects, the heap frozen while a run trains, and everything put back as it was."""

from __future__ import annotations

import gc
import sys

import pytest

from netspec.heap import freeze_for_exit, frozen_heap, frozen_while, gc_paused


@pytest.fixture(autouse=True)
def _collector_as_found():
    enabled, frozen = gc.isenabled(), gc.get_freeze_count()
    yield
    assert gc.isenabled() == enabled and gc.get_freeze_count() == frozen


def test_paused_inside_and_restored_even_on_an_error():
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(ValueError), gc_paused():
        raise ValueError
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # it was off: it stays off
    finally:
        gc.enable()


def test_frozen_inside_unfrozen_after():
    kept = [[]]  # a container alive on entry
    with frozen_heap():
        assert gc.get_freeze_count() > 0
        assert not any(obj is kept for obj in gc.get_objects())  # left out of collections
        made = [[]]
        assert any(obj is made for obj in gc.get_objects())  # what the run makes is collected
    assert any(obj is kept for obj in gc.get_objects())
    with pytest.raises(ValueError), frozen_heap():
        raise ValueError


def test_someone_elses_freeze_and_a_collector_turned_off_are_left_alone():
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with frozen_heap():
            assert gc.get_freeze_count() == frozen
        assert gc.get_freeze_count() == frozen  # not unfrozen by us
    finally:
        gc.unfreeze()
    with gc_paused(), frozen_heap():
        assert gc.get_freeze_count() == 0


def test_imports_are_made_paused_and_frozen_before_the_collector_is_back(monkeypatch):
    """What the imports made is frozen while the collector is still off: else the first
    collection after would scan it all (it took 0.2 s after Lightning's import)."""
    seen = []
    monkeypatch.setattr(
        "importlib.import_module", lambda name: seen.append((name, gc.isenabled(), gc.get_freeze_count()))
    )
    made = []
    monkeypatch.setattr(gc, "freeze", lambda real=gc.freeze: (made.append(gc.isenabled()), real())[1])
    with frozen_heap("pytorch_lightning", "torch"):
        assert gc.isenabled() and gc.get_freeze_count() > 0
    assert seen == [("pytorch_lightning", False, 0), ("torch", False, 0)] and made == [False]
    monkeypatch.undo()

    @frozen_while("json")
    def inside():
        return gc.get_freeze_count()

    assert inside() > 0 and "json" in sys.modules


def test_the_command_freezes_its_heap_before_the_interpreter_tears_it_down():
    """``netspec`` (the console script) and ``python -m netspec`` go through ``console``, which
    freezes the heap once main returns; main itself (called by tests, notebooks) does not."""
    import subprocess

    from conftest import REPO

    code = (
        "import gc, sys, atexit\n"
        "atexit.register(lambda: print('FROZEN', gc.get_freeze_count() > 0))\n"
        "sys.argv = ['netspec', 'build', 'specs/lenet.yaml']\n"
        "from netspec.cli import console\n"
        "console()\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=False)
    assert out.returncode == 0 and "FROZEN True" in out.stdout, out.stderr
    freeze_for_exit()  # what console does; undone here so the test session's heap is not left frozen
    assert gc.get_freeze_count() > 0
    gc.unfreeze()


def test_a_run_trains_on_a_frozen_heap_and_leaves_the_collector_as_it_was(tmp_path, monkeypatch):
    import pytorch_lightning as pl
    from conftest import REPO

    from netspec.training import fit, run

    seen: list[int] = []

    class Look(pl.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            seen.append(gc.get_freeze_count())

    made = run._callbacks
    monkeypatch.setattr(run, "_callbacks", lambda *a, **k: ([*made(*a, **k)[0], Look()], made(*a, **k)[1]))
    fit(
        REPO / "specs/lenet.yaml",
        overrides=["train.max_steps=3", "train.progress=none", f"train.run_dir={tmp_path}"],
    )
    assert seen and all(count > 0 for count in seen)
