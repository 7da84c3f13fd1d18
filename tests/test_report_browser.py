"""A real run's report, opened in headless Chromium (Debian's package, driven by playwright).

The browser is the system's /usr/bin/chromium: installed here with apt-get when missing (CI
runs as root on a fresh machine); playwright never downloads a browser of its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.cli import main

CHROMIUM = Path("/usr/bin/chromium")
#: the screen the report is written for; with every section folded it fits in 15 of them
SCREEN = (1400, 1000)
MAX_SCREENS = 15
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def _install_chromium() -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"],
                   check=True, env=env)


@pytest.fixture(scope="session")
def chromium() -> Path:
    if not CHROMIUM.exists():
        if os.geteuid() == 0 and shutil.which("apt-get"):
            _install_chromium()
        elif not os.environ.get("CI"):
            pytest.skip("needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)")
    assert CHROMIUM.exists(), "chromium could not be installed"
    return CHROMIUM


@pytest.fixture()
def browser_page(chromium: Path) -> Iterator[object]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with tempfile.TemporaryDirectory(prefix="membench-chromium-") as profile, \
            sync_api.sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            profile, executable_path=str(chromium), headless=True, args=ARGS,
            viewport={"width": SCREEN[0], "height": SCREEN[1]})
        try:
            yield ctx.new_page()
        finally:
            ctx.close()


@pytest.mark.slow
@pytest.mark.timeout(900)  # includes installing chromium on a fresh machine
def test_real_run_report_in_chromium(tmp_path: Path, browser_page) -> None:
    workloads = ["gemm:m=5,n=7,k=3", "bias-relu:n=100"]
    strategies = ["shared", "per-module", "multi-memory", "host-call:mode=paged"]
    runtimes = ["wasmtime", "v8@20"]     # Node 20's V8 lacks multi-memory: a gap with a reason
    argv = ["run", "--out", str(tmp_path), "--repeat", "5", "--sample-time", "0.0005"]
    for flag, values in (("--workload", workloads), ("--strategy", strategies),
                         ("--runtime", runtimes)):
        for v in values:
            argv += [flag, v]
    assert main(argv) == 0
    (run_dir,) = list(tmp_path.iterdir())
    html = run_dir / "report.html"
    assert html.is_file(), "membench run did not write its report"

    page = browser_page
    errors: list[str] = []
    remote: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: None if r.url.startswith(("file:", "data:"))
            else remote.append(r.url))
    page.goto(html.as_uri())
    page.wait_for_load_state("load")
    widths = page.evaluate(
        "Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])")
    assert len(widths) >= 6
    broken = [src for src, complete, w in widths if not complete or w <= 0]
    assert not broken, f"images that did not load: {broken}"
    # the first screen: one sentence per runtime, then the strategy x runtime matrix
    sentences = page.locator("#answer-sentences li")
    assert [sentences.nth(i).inner_text().split(":")[0] for i in range(sentences.count())] \
        == runtimes
    assert "fastest" in sentences.nth(0).inner_text()
    matrix = page.locator("#answer-matrix")
    box = matrix.bounding_box()
    assert box is not None and box["y"] < SCREEN[1], "the matrix starts below the first screen"
    assert [matrix.locator("thead th").nth(i).inner_text() for i in range(2, 2 + len(runtimes))] \
        == runtimes
    rows = matrix.locator("tbody tr")
    assert [rows.nth(i).locator("th").inner_text() for i in range(rows.count())] == strategies
    assert rows.nth(0).locator("td").nth(1).inner_text().startswith("1 (baseline)")
    per_module = rows.nth(1).locator("td").nth(1)
    assert "%" in per_module.inner_text() and "copied" in per_module.inner_text()
    assert "v8@20 lacks multi-memory" in rows.nth(2).locator("td").nth(2).get_attribute("title")
    # everything else is folded: the whole page stays within MAX_SCREENS screens
    assert page.evaluate("document.querySelectorAll('section > details[open]').length") == 0
    height = page.evaluate("document.documentElement.scrollHeight")
    assert height <= MAX_SCREENS * SCREEN[1], f"page is {height} px tall folded"
    headline = page.locator("#headline-table tbody tr")
    assert headline.count() == len(workloads)
    assert [headline.nth(i).locator("th").text_content() for i in range(len(workloads))] \
        == workloads  # folded: in the page, not on the screen
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
    assert not errors, f"console errors: {errors}"
    assert not remote, f"the report fetched from the network: {remote}"
