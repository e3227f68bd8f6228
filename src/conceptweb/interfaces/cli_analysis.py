"""CLI commands that analyse run directories: `analyze` and `web`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from conceptweb.interfaces import console as consoles
from conceptweb.interfaces.cli_common import flag, group, user_errors
from conceptweb.interfaces.numbers import fmt

if TYPE_CHECKING:
    from rich.table import Table

app = group()


@contextmanager
def _stage_progress(enabled: bool) -> Iterator[Any]:
    """A rich progress display with one bar per analysis stage; yields on_progress(stage, done, total)."""
    from conceptweb.interfaces.console import console

    if not enabled:
        yield lambda stage, done, total: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("[bold]{task.description:<13}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    tasks: dict[str, Any] = {}
    with progress:

        def on_progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total)
            progress.update(tasks[stage], completed=done, total=total)

        yield on_progress


def summary_table(summary: dict[str, Any], title: str) -> Table:
    """The headline numbers of a summary.json as a rich table."""
    from rich.table import Table

    t = Table(title=title, show_lines=False)
    t.add_column("section")
    t.add_column("measured")
    t.add_column("verdict")
    ts, vs, web = summary.get("two_stage"), summary.get("v_shape"), summary.get("web")
    fr, col, fg = summary.get("frustration"), summary.get("collapse"), summary.get("forgetting")
    cand = summary.get("frustration_candidates") or {}
    if ts:
        t.add_row(
            "two-stage",
            f"knee {fmt(ts['knee_step'], '.0f')}, slopes {fmt(ts['slope_early'])} / "
            f"{fmt(ts['slope_late'])} (ratio {fmt(ts['slope_ratio'], '.1f')}), BIC "
            f"{fmt(ts['bic_piecewise'], '.0f')} vs {fmt(ts['bic_saturating'], '.0f')}",
            fmt(ts["is_two_stage"]),
        )
    if vs:
        t.add_row(
            "V-shape",
            f"{fmt(vs['start_len'], '.1f')} -> {fmt(vs['min_len'], '.1f')} @ "
            f"{fmt(vs['min_step'])} -> {fmt(vs['end_len'], '.1f')} (fall "
            f"{fmt(vs['drop_frac'], '.0%')}, rise {fmt(vs['rise_frac'], '.0%')})",
            fmt(vs["is_v"]),
        )
    if web:
        t.add_row(
            "web",
            f"<k> {fmt(web['final_avg_degree'], '.2f')}, {web['final_n_components']} "
            f"components (giant {fmt(web['final_giant_fraction'], '.0%')}), "
            f"{web['n_bridges']} bridges; most islands at step {fmt(web['peak_islands_step'])}",
            "",
        )
    if fr:
        t.add_row(
            "frustration",
            f"F(t) peak @ {fmt(fr['peak_step'])}; {fr['n_forgetting_events']} forgetting / "
            f"{fr['n_learning_events']} learning events",
            "",
        )
    if cand:
        t.add_row(
            "max. frustrated",
            f"forgetting peak {fmt(cand.get('forgetting_peak_step'))}, V bottom "
            f"{fmt(cand.get('v_bottom_step'))}, knee {fmt(cand.get('knee_step'), '.0f')}",
            "",
        )
    if col:
        t.add_row(
            "collapse",
            f"diversity {fmt(col['diversity_start'], '.2f')} -> "
            f"{fmt(col['diversity_end'], '.2f')}, leaf entropy "
            f"{fmt(col['leaf_entropy_start'], '.2f')} -> {fmt(col['leaf_entropy_end'], '.2f')}",
            "",
        )
    if fg:
        t.add_row(
            "SFT forgetting",
            f"solved {fg['solved_before']} -> {fg['solved_after_sft']} (lost "
            f"{fmt(fg['lost_frac'], '.0%')}; {fmt(fg['lost_downstream_of_cut_bridges_frac'], '.0%')}"
            f" behind cut bridges); recovery {fmt(fg['recovery_steps'], '.0f')} RL steps",
            "",
        )
    return t


def topology_table(topo: dict[str, Any], title: str, n_top: int = 5) -> Table:
    """One checkpoint's web topology as a rich table."""
    from rich.table import Table

    t = Table(title=title)
    t.add_column("measure")
    t.add_column("value", justify="right")
    sizes = topo["component_sizes"]
    rows = [
        ("web nodes |V|", topo["n_nodes"]),
        ("web edges |E| (undirected)", topo["n_edges"]),
        ("average degree <k> = 2|E|/|V|", fmt(topo["avg_degree"], ".3f")),
        ("components (islands)", topo["n_components"]),
        ("largest component sizes", ", ".join(str(s) for s in sizes[:n_top]) or "-"),
        ("largest-component fraction", fmt(topo["giant_fraction"], ".3f")),
        ("bridges", topo["n_bridges"]),
        ("trunk bridges (crossed by >= 2 problems)", topo["n_trunk_bridges"]),
        ("max problems across one bridge", topo["max_bridge_load"]),
        ("leaves (degree 1)", topo["n_leaves"]),
        ("problems with start and answer connected", fmt(topo["frac_connected"], ".0%")),
        ("mean in-web geodesic start -> answer", fmt(topo["mean_geodesic"], ".2f")),
        ("problems reachable along web edges", fmt(topo["frac_directed"], ".0%")),
        ("mean entropy of pi at leaves (nats)", fmt(topo["leaf_entropy"], ".3f")),
        ("mean entropy of pi at trunk nodes (nats)", fmt(topo["trunk_entropy"], ".3f")),
        ("traffic web: nodes / edges", f"{topo['traffic_n_nodes']} / {topo['traffic_n_edges']}"),
        ("problems with a sampled correct path", fmt(topo["frac_problems_with_path"], ".0%")),
    ]
    for k, v in rows:
        t.add_row(k, str(v))
    loads = sorted(
        zip(topo["bridge_load"], topo["bridges"], strict=True), key=lambda x: (-x[0], x[1])
    )
    for n, (a, b) in loads[:n_top]:
        if n > 0:
            t.add_row(f"bridge {a} - {b}", f"{n} problems")
    return t


@app.command()
@user_errors
def analyze(
    run_dir: Annotated[Path, typer.Argument(help="run directory to analyse")],
    tau: Annotated[float, typer.Option(help="web threshold: edges with pi >= tau")] = 0.5,
    min_count: Annotated[
        int | None,
        typer.Option(
            help="LLM runs with a concept graph: a concept's edges enter the web only if it has "
            "at least this many outgoing transitions (default: the graph's, from llm graph)"
        ),
    ] = None,
    no_figures: Annotated[
        bool, flag("--no-figures", help="write summary.json and report only")
    ] = False,
    quiet: Annotated[bool, flag("--quiet", "-q", help="no progress, no table")] = False,
    interactive: Annotated[
        bool,
        typer.Option(help="also write interactive.html: a step slider over the web and the curves"),
    ] = True,
) -> None:
    """Analyse a run: write summary.json, figures/, report.md, report.html and interactive.html.

    Detects the two-stage learning curve, the V of response length, forgetting and the
    maximally frustrated state, policy collapse, the concept web's topology over training
    (CoNet runs) and, for SFT runs, forgetting and recovery.
    """
    from conceptweb.analysis.summary import analyze as run_analysis
    from conceptweb.analysis.summary import write_summary
    from conceptweb.errors import ConceptwebError
    from conceptweb.interfaces.report import write_run_report
    from conceptweb.rundir import RunDir

    if not 0.0 < tau <= 1.0:
        raise ConceptwebError(f"--tau must be in (0, 1], got {tau}")
    run = RunDir.open(run_dir)
    if min_count is not None:
        from conceptweb.analysis.reasoning import has_graph

        if min_count < 1:
            raise ConceptwebError(f"--min-count must be at least 1, got {min_count}")
        if not has_graph(run):
            raise ConceptwebError(
                "--min-count applies to a web extracted from text: an LLM run with a concept "
                f"graph (`conceptweb llm graph {run_dir}`)"
            )
    with _stage_progress(not quiet) as on_progress:
        analysis = run_analysis(run, tau, on_progress=on_progress, min_count=min_count)
        figures = None
        if not no_figures:
            from conceptweb.interfaces.figures import run_figures

            figures = run_figures(analysis, on_progress=on_progress)
    summary_path = write_summary(run, analysis.summary)
    report = write_run_report(run, analysis.summary, figures or {})
    if not quiet:
        consoles.out_console.print(summary_table(analysis.summary, f"conceptweb analyze {run_dir}"))
    written = [summary_path, report, report.with_suffix(".html")]
    if interactive:
        from conceptweb.interfaces.interactive import write_interactive_report

        written.append(write_interactive_report(analysis))
    typer.echo("wrote " + ", ".join(str(p) for p in written))
    if figures:
        typer.echo(f"wrote {len(figures)} figures to {run.figures_dir}")


@app.command()
@user_errors
def web(
    run_dir: Annotated[Path, typer.Argument(help="CoNet run directory")],
    step: Annotated[int | None, typer.Option(help="checkpoint step (default: the latest)")] = None,
    tau: Annotated[float, typer.Option(help="web threshold: edges with pi >= tau")] = 0.5,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="PNG to draw (default: RUN/figures/web_step_N.png)"),
    ] = None,
    visited: Annotated[
        bool,
        flag("--visited", help="restrict the web to nodes that correct rollouts visit"),
    ] = False,
    no_draw: Annotated[bool, flag("--no-draw", help="print the table only")] = False,
) -> None:
    """Topology of the concept web at one checkpoint, printed as a table and drawn."""
    from conceptweb.analysis.topology import web_at_step
    from conceptweb.errors import ConceptwebError
    from conceptweb.rundir import RunDir

    if not 0.0 < tau <= 1.0:
        raise ConceptwebError(f"--tau must be in (0, 1], got {tau}")
    if out is not None and out.suffix.lower() not in (".png", ".pdf", ".svg"):
        raise ConceptwebError(f"--out must end in .png, .pdf or .svg, got {out.name}")
    run = RunDir.open(run_dir)
    cw = web_at_step(run, step, tau, restrict_to_visited=visited)
    label = (
        f"web of {run_dir} at step {cw.step} (tau {tau:g}{', visited nodes' if visited else ''})"
    )
    consoles.out_console.print(topology_table(cw.topology.to_dict(), label))
    if not no_draw:
        from conceptweb.interfaces.figures import plot_web

        target = out if out is not None else run.figures_dir / f"web_step_{cw.step:06d}.png"
        plot_web(cw.web, target, label, cw.topology.to_dict())
        typer.echo(f"drawing written to {target}")
