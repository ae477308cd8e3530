"""The bench report as people see it: report.html rendered by headless Chromium (Debian's chromium package)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import datetime, timezone

import pytest

from slurmkit.bench.report import write_report
from slurmkit.bench.results import RunLog, save_run
from tests.conftest import FIXTURES

pytestmark = pytest.mark.live

NT = FIXTURES / "nccl-tests"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Appended to a copy of the page: after load, write each <img>'s state into the DOM for --dump-dom.
PROBE = """<script>window.addEventListener('load', function () {
  var imgs = Array.from(document.images).map(function (i) {
    return {complete: i.complete, w: i.naturalWidth, h: i.naturalHeight, file: i.dataset.file}; });
  var pre = document.createElement('pre'); pre.id = 'img-probe'; pre.textContent = JSON.stringify(imgs);
  document.body.appendChild(pre); });</script>"""


def _chromium(tmp_path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'prof'}",
         "--virtual-time-budget=5000", *args],
        capture_output=True, text=True, timeout=120,
    )


@pytest.fixture
def report(tmp_path):
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium; scripts/setup.sh installs it)")
    verdict = {"passed": False, "reasons": ["pair node-[3-4]: busbw 77.56 GB/s < expected 100 GB/s"],
               "expect_gbps": 100.0, "min_size_bytes": 1 << 30}
    run = save_run(tmp_path / "results",
                   [RunLog(NT / "nccl-10-a3mega-2node-h100-rankheader.txt", nodes=["node-1", "node-2"]),
                    RunLog(NT / "nccl-04-awsdt-2xp4de-srun-label-nofooter.txt", nodes=["node-3", "node-4"])],
                   mode="pairs", verdict=verdict, culprits=[{"node": "node-3", "message": "slowest link"}],
                   when=datetime(2025, 3, 2, 9, 0, tzinfo=timezone.utc), environment={})
    return write_report(run)


def test_dom_shows_verdict_and_every_plot_loads(report, tmp_path):
    probe = report.with_name("probe.html")
    probe.write_text(report.read_text().replace("</body>", PROBE + "</body>"))
    res = _chromium(tmp_path, "--dump-dom", probe.as_uri())
    assert res.returncode == 0, res.stderr[-2000:]
    dom = res.stdout
    verdict = re.search(r'<div class="verdict fail" id="verdict">(.*?)</div>\s*</div>', dom, re.S)
    assert verdict and "FAIL" in verdict.group(1) and "node-3: slowest link" in verdict.group(1)
    imgs = json.loads(re.search(r'<pre id="img-probe">(.*?)</pre>', dom, re.S).group(1))
    assert {i["file"] for i in imgs} == {"plots/busbw.png", "plots/latency.png", "plots/node_sets.png"}
    for img in imgs:
        assert img["complete"] and img["w"] > 300 and img["h"] > 200, img
        assert (report.parent / img["file"]).is_file()


def test_screenshot_is_not_blank(report, tmp_path):
    shot = tmp_path / "shot.png"
    res = _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", report.as_uri())
    assert res.returncode == 0 and shot.is_file(), res.stderr[-2000:]
    from PIL import Image

    img = Image.open(shot).convert("RGB")
    assert img.size == (1280, 2000)
    colors = img.getcolors(maxcolors=1 << 20) or []
    assert len(colors) > 50  # text, plots and the banner, not an empty page
    # the FAIL banner at the top is red (#c62828)
    top = img.crop((0, 0, 1280, 250))
    assert any(abs(r - 0xC6) < 12 and abs(g - 0x28) < 12 and abs(b - 0x28) < 12 for _, (r, g, b) in
               (top.getcolors(maxcolors=1 << 20) or []))
    shutil.copy(shot, report.parent / "screenshot.png")
