"""`conceptweb analyze` and `conceptweb web`: files written, tables printed, one-line errors."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from conceptweb.experiments.runs import train_run
from conceptweb.interfaces.cli import app
from tests.conftest import small_config

runner = CliRunner()
PNG = b"\x89PNG\r\n\x1a\n"


def test_analyze_writes_summary_figures_and_report(base_run, run_copy):
    run = run_copy(base_run)
    res = runner.invoke(app, ["analyze", str(run.path), "-q"])
    assert res.exit_code == 0, res.output
    assert "summary.json" in res.output
    summary = json.loads(run.summary_path.read_text())
    assert summary["web"]["final_avg_degree"] > 0
    figs = sorted(p.name for p in run.figures_dir.iterdir())
    assert {"learning_curve.png", "length_curve.png", "web_snapshots.png"} <= set(figs)
    assert all((run.figures_dir / f).read_bytes().startswith(PNG) for f in figs)
    md = (run.path / "report.md").read_text()
    assert "figures/learning_curve.png" in md
    assert f"{summary['web']['final_avg_degree']:.2f}" in md
    html = (run.path / "report.html").read_text()
    assert "data:image/png;base64," in html and "<table>" in html
    # a second analysis gives the same summary.json
    before = run.summary_path.read_bytes()
    res = runner.invoke(app, ["analyze", str(run.path), "-q", "--no-figures"])
    assert res.exit_code == 0, res.output
    assert run.summary_path.read_bytes() == before


def test_analyze_prints_a_table_and_skips_figures(sft_run, run_copy):
    run = run_copy(sft_run)
    res = runner.invoke(app, ["analyze", str(run.path), "--no-figures"])
    assert res.exit_code == 0, res.output
    assert "SFT forgetting" in res.output
    assert not run.figures_dir.exists()
    assert json.loads(run.summary_path.read_text())["forgetting"] is not None


def test_web_prints_topology_and_draws(base_run, tmp_path):
    out = tmp_path / "w.png"
    res = runner.invoke(app, ["web", str(base_run.path), "--step", "30", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "average degree" in res.output and "step 30" in res.output
    assert out.read_bytes().startswith(PNG)
    res = runner.invoke(app, ["web", str(base_run.path), "--tau", "0.9", "--no-draw"])
    assert res.exit_code == 0, res.output


def _one_line_error(res, message):
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert "Traceback" not in res.output
    assert res.output.strip().count("\n") == 0


def test_cli_errors_are_one_line(base_run, run_copy, tmp_path):
    _one_line_error(
        runner.invoke(app, ["web", str(base_run.path), "--step", "15"]), "no checkpoint"
    )
    _one_line_error(runner.invoke(app, ["web", str(base_run.path), "--tau", "0"]), "--tau")
    conet = run_copy(base_run, "conet")
    conet.summary_path.unlink(missing_ok=True)
    no_graph = ["analyze", str(conet.path), "--min-count", "2"]  # a CoNet web is not counted
    _one_line_error(runner.invoke(app, no_graph), "--min-count applies to a web extracted")
    assert not conet.summary_path.exists()
    _one_line_error(
        runner.invoke(app, ["web", str(base_run.path), "--out", str(tmp_path / "x.txt")]), "--out"
    )
    (tmp_path / "plain").mkdir()
    _one_line_error(
        runner.invoke(app, ["analyze", str(tmp_path / "plain")]), "not a conceptweb run"
    )
    broken = run_copy(base_run, "broken")
    broken.metrics_path.unlink()
    _one_line_error(runner.invoke(app, ["analyze", str(broken.path)]), "metrics.parquet is missing")
    llm = run_copy(base_run, "llm")
    for p in llm.checkpoints_dir.iterdir():
        p.unlink()
    llm.update_meta(kind="llm")
    _one_line_error(runner.invoke(app, ["web", str(llm.path)]), "no checkpoints")
    res = runner.invoke(app, ["analyze", str(llm.path), "-q"])
    assert res.exit_code == 0, res.output
    assert json.loads(llm.summary_path.read_text())["web"] is None


def test_a_very_short_run_is_analysed_without_crashing(tmp_path):
    run = train_run(small_config(steps=3), tmp_path / "short")
    res = runner.invoke(app, ["analyze", str(run.path), "-q"])
    assert res.exit_code == 0, res.output
    s = json.loads(run.summary_path.read_text())
    assert s["two_stage"]["is_two_stage"] is False and "too few" in s["two_stage"]["reason"]
    assert s["v_shape"]["is_v"] is False and s["v_shape"]["min_step"] is None
    assert s["frustration"]["peak_step"] is None
    assert (run.figures_dir / "length_curve.png").read_bytes().startswith(PNG)
