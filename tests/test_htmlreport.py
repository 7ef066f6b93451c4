"""``netspec build SPEC --html``: a self-contained report, checked in a real headless browser."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from conftest import REPO

import netspec
from netspec.cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.fixture(scope="module")
def unet_report(tmp_path_factory):
    path = tmp_path_factory.mktemp("html") / "unet.html"
    assert main(["build", str(REPO / "specs/unet.yaml"), "--html", str(path)]) == 0
    return path


def test_the_report_is_self_contained_with_table_picture_and_explanations(unet_report):
    text = unet_report.read_text()
    assert "<svg" in text and "<table>" in text
    assert not re.search(r"<link|<img|src=|url\(http|@import", text)  # nothing fetched to view it
    spec = netspec.load(str(REPO / "specs/unet.yaml"))
    assert text.count('<tr class="layer"') == 20  # the table folds block instances like the CLI
    nodes = re.findall(r'<g class="node" data-name="([^"]+)"', text)
    assert nodes[0] == "input" and nodes[-1] == "output:logits" and "dec3.up" in nodes
    assert "tconv 2 →64" in text and "32,832 params" in text  # type, key parameters, count
    assert 'stroke-dasharray="5 3"' in text  # skip connections are drawn
    assert ">[64, 15, 15]</text>" in text  # shapes on edges
    assert "H_out = W_out = (7 − 1)·2 − 2·0 + 1·(2 − 1) + 1 + 1 = 15" in text  # dec3.up's explanation
    assert spec.layer("dec3.up").output_shape == (64, 15, 15)


@pytest.mark.skipif(CHROMIUM is None, reason="needs a headless Chromium (apt-get install chromium)")
def test_the_report_opens_in_headless_chromium_and_a_click_shows_an_explanation(unet_report, tmp_path):
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    url = unet_report.as_uri() + "#layer=dec3.up"  # the page clicks this node once loaded
    dom = subprocess.run(
        [*base, "--dump-dom", url], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    explain = re.search(r'<div id="explain" data-layer="dec3.up">(.*?)</div>', dom, re.S)
    assert explain, "clicking the dec3.up node did not fill the explanation"
    assert "19 dec3.up (tconv)" in explain.group(1) and "output_padding" in explain.group(1)
    assert re.search(r'<g class="node selected" data-name="dec3.up"', dom)
    assert re.search(r'<tr class="layer selected" data-name="dec3.up"', dom)
    shot = tmp_path / "unet.png"
    subprocess.run(
        [*base, "--window-size=1400,1000", f"--screenshot={shot}", url], capture_output=True, timeout=60
    )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_the_picture_shows_unpooling_indices_and_works_for_a_flat_spec(tmp_path):
    segnet = tmp_path / "segnet.html"
    assert main(["build", str(REPO / "specs/segnet.yaml"), "--html", str(segnet)]) == 0
    assert segnet.read_text().count(">indices</text>") == 3
    lenet = tmp_path / "lenet.html"
    assert main(["build", str(REPO / "specs/lenet.yaml"), "--html", str(lenet), "--summary"]) == 0
    text = lenet.read_text()
    assert "conv 5 pad 2 →6" in text and "156 params" in text and "cluster" not in text
