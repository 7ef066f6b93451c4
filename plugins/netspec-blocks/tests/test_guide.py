"""The plugin author's guide (``plugins/README.md``) stays true: its minimal plugin works as printed.

The guide's files are the fenced code blocks whose first line is ``# <path>``. This test writes
them out, makes them importable with a hand-written ``.dist-info`` (what ``pip install`` would
leave behind, entry point included), runs the guide's own tests in a fresh interpreter, and
checks that the error the guide shows is the error netspec prints. A copy of netspec-blocks
outside the netspec repository has no guide, so this test is skipped there.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python ≥ 3.11

GUIDE = Path(__file__).resolve().parents[2] / "README.md"
pytestmark = pytest.mark.skipif(not GUIDE.exists(), reason="the plugin guide is not next to this plugin")

FENCE = re.compile(r"^```(\w+)\n(.*?)^```$", re.S | re.M)


def guide_files() -> dict[str, str]:
    files = {}
    for _, body in FENCE.findall(GUIDE.read_text()):
        first = body.split("\n", 1)[0]
        if re.fullmatch(r"# [\w./-]+\.(py|toml)", first):
            files[first[2:]] = body
    return files


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """The guide's distribution, importable as if pip-installed: (its root, env for subprocesses)."""
    root = tmp_path_factory.mktemp("guide") / "netspec-crop"
    for path, text in guide_files().items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    site = root.parent / "site"
    dist_info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
    )
    entry_points = "".join(f"{k} = {v}\n" for k, v in project["entry-points"]["netspec"].items())
    (dist_info / "entry_points.txt").write_text(f"[netspec]\n{entry_points}")
    path = os.pathsep.join([str(site), str(root / "src"), os.environ.get("PYTHONPATH", "")])
    return root, {**os.environ, "PYTHONPATH": path}


def test_the_guide_has_every_file_of_its_minimal_plugin():
    assert set(guide_files()) == {
        "pyproject.toml",
        "src/netspec_crop/__init__.py",
        "src/netspec_crop/layers.py",
        "src/netspec_crop/modules.py",
        "tests/test_crop.py",
    }


def test_the_guide_plugin_passes_its_own_tests(installed):
    root, env = installed
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error", "tests"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


def test_the_guide_error_is_what_netspec_prints(installed):
    root, env = installed
    text = GUIDE.read_text()
    spec = re.search(r"```yaml\n(netspec: 1\nname: cropped\n.*?)```", text, re.S).group(1)
    (root / "cropped.yaml").write_text(spec.replace("amount: [1, 2]", "amount: [1, 4]"))
    shown = re.search(r"```\n(cropped\.yaml:.*?)```", text, re.S).group(1)
    result = subprocess.run(
        [sys.executable, "-m", "netspec", "build", "cropped.yaml"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr == shown
