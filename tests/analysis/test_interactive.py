"""The interactive report: a self-contained page, checked in a real headless Chromium."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conceptweb.interfaces.cli import app

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--host-resolver-rules=MAP * ~NOTFOUND",  # any network request would fail, and show
    "--window-size=1400,1000",
]


@pytest.fixture(scope="module")
def analysed(base_run, tmp_path_factory) -> Path:
    """A copy of the small run, analysed by the CLI (summary.json and interactive.html)."""
    dst = tmp_path_factory.mktemp("interactive") / "run"
    shutil.copytree(base_run.path, dst)
    res = CliRunner().invoke(app, ["analyze", str(dst), "--no-figures", "-q"])
    assert res.exit_code == 0, res.output
    return dst


def test_page_is_one_offline_file(analysed):
    page = (analysed / "interactive.html").read_text()
    assert "<script src=" not in page and "<link " not in page  # everything inline
    assert "Plotly" in page and 'id="cw-data"' in page
    data = page.split('<script type="application/json" id="cw-data">')[1].split("</script>")[0]
    panel = json.loads(data)["panels"][0]
    assert [w["step"] for w in panel["webs"]] == list(range(0, 61, 10))
    assert panel["curves"]["steps"] == list(range(1, 61))


def test_webs_too_large_to_lay_out_are_named_not_drawn(base_run, tmp_path, monkeypatch):
    # a spring layout of a 100k-concept web would never finish: the page says so instead
    from conceptweb.interfaces import interactive

    monkeypatch.setattr(interactive, "MAX_DRAWN_NODES", 0)
    dst = tmp_path / "run"
    shutil.copytree(base_run.path, dst)
    res = CliRunner().invoke(app, ["analyze", str(dst), "--no-figures", "-q"])
    assert res.exit_code == 0, res.output
    page = (dst / "interactive.html").read_text()
    data = page.split('<script type="application/json" id="cw-data">')[1].split("</script>")[0]
    panel = json.loads(data)["panels"][0]
    assert panel["webs"] == []
    assert "not drawn here (at most 0)" in panel["graph"]["note"]
    assert panel["curves"]["steps"] == list(range(1, 61))  # the rest of the page is there


@pytest.fixture(scope="module")
def browser():
    if not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)):
        if os.environ.get("CI"):
            pytest.fail("CI must have chromium and chromium-driver (installed by .ci/run)")
        pytest.skip(
            "chromium / chromedriver not installed (apt-get install chromium chromium-driver)"
        )
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium fetch a driver
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    profile = Path(tempfile.mkdtemp(prefix="cw-chromium-"))
    for flag in [*FLAGS, f"--user-data-dir={profile}"]:
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def _load(driver, path: Path) -> None:
    driver.get(path.resolve().as_uri())
    deadline = time.monotonic() + 60
    while not driver.execute_script("return document.body.dataset.ready === '1'"):
        assert time.monotonic() < deadline, "the page did not finish drawing"
        time.sleep(0.05)


def _drawn(driver) -> tuple[str, int, str]:
    info = driver.find_element("id", "cw-info-0").text
    points = driver.execute_script("return document.querySelectorAll('#cw-web-0 .point').length")
    marker = driver.execute_script(
        "return document.getElementById('cw-curve-reward').layout.shapes[0].x0"
    )
    return info, points, str(marker)


def test_page_in_a_real_browser(analysed, browser):
    _load(browser, analysed / "interactive.html")
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == []
    # the slider starts at the last checkpoint; moving it redraws the web and the curve marker
    last = _drawn(browser)
    assert last[0].startswith("web at step 60") and last[1] > 0 and last[2] == "60"
    browser.execute_script(
        "const s = document.getElementById('cw-step'); s.value = '1';"
        "s.dispatchEvent(new Event('input'));"
    )
    early = _drawn(browser)
    assert early[0].startswith("web at step 10") and early[2] == "10"
    assert early[1] != last[1] and early[0] != last[0]
    # every number in the summary table equals summary.json
    summary = json.loads((analysed / "summary.json").read_text())
    cells = browser.execute_script(
        "return Array.from(document.querySelectorAll('#cw-summary td[data-key]'))"
        ".map(td => [td.dataset.key, td.textContent])"
    )
    assert len(cells) >= 20
    for key, text in cells:
        section, name = key.split(".")
        value = summary[section][name]
        if value is None:
            assert text == "-"
        elif isinstance(value, bool):
            assert text == ("yes" if value else "no")
        elif isinstance(value, int):
            assert text == str(value)
        else:
            assert math.isclose(float(text), value, rel_tol=5e-4), (key, text, value)
    later = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert later == []


def test_arms_of_one_seed_share_one_layout(base_run, sft_run, monkeypatch):
    # one spring layout for all arms (a concept at the same place in every arm), not one each
    from conceptweb.analysis.summary import analyze
    from conceptweb.interfaces import interactive

    calls = []
    layout = interactive._layout
    monkeypatch.setattr(interactive, "_layout", lambda webs: calls.append(webs) or layout(webs))
    panels = interactive.arm_panels([("plain", analyze(base_run)), ("sft", analyze(sft_run))])
    assert len(calls) == 1
    for panel in panels:
        pos = panel["graph"]["positions"]
        drawn = {str(n[0]) for web in panel["webs"] for n in web["nodes"]}
        assert drawn and set(pos) == drawn  # every drawn node placed, no other
    shared = set(panels[0]["graph"]["positions"]) & set(panels[1]["graph"]["positions"])
    assert shared
    assert all(
        panels[0]["graph"]["positions"][n] == panels[1]["graph"]["positions"][n] for n in shared
    )


def test_arms_side_by_side_share_one_slider(base_run, sft_run, tmp_path, browser):
    from conceptweb.analysis.summary import analyze
    from conceptweb.interfaces.interactive import interactive_html, run_panel

    panels = [run_panel(analyze(base_run), "plain"), run_panel(analyze(sft_run), "sft")]
    page = tmp_path / "arms.html"
    page.write_text(interactive_html("two arms", panels))
    _load(browser, page)
    assert [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")] == []
    assert browser.execute_script("return document.querySelectorAll('.cw-web').length") == 2
    traces = browser.execute_script("return document.getElementById('cw-curve-reward').data.length")
    assert traces == 2  # the arms' learning curves overlaid
    before = [browser.find_element("id", f"cw-info-{i}").text for i in (0, 1)]
    browser.execute_script(
        "const s = document.getElementById('cw-step'); s.value = '0';"
        "s.dispatchEvent(new Event('input'));"
    )
    after = [browser.find_element("id", f"cw-info-{i}").text for i in (0, 1)]
    assert all(a != b for a, b in zip(after, before, strict=True))
    assert all(a.startswith("web at step 0") for a in after)
