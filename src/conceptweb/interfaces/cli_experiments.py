"""CLI commands that run suites of experiments: `reproduce`, `ablate` and `sweep`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from conceptweb.interfaces.cli_common import (
    AddressOpt,
    BackendOpt,
    BatchOpt,
    ConfigOpt,
    PresetOpt,
    QuietOpt,
    SetOpt,
    WorkersOpt,
    flag,
    group,
    interruptible,
    parse_list,
    start_backend,
    user_errors,
)

app = group()


@app.command()
@user_errors
def ablate(
    out: Annotated[Path, typer.Option("--out", "-o", help="ablation directory (re-run to resume)")],
    preset: PresetOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    seeds: Annotated[int | None, typer.Option(help="paired seeds per arm (default 16)")] = None,
    first_seed: Annotated[
        int | None,
        typer.Option(help="first seed (default 0); fresh seeds for a confirmatory ablation"),
    ] = None,
    arms: Annotated[
        str | None,
        typer.Option(
            help="comma-separated arms: plain, OPERATOR@auto|early|mid|late|STEP "
            "(default: plain, sft at auto/early/mid/late, rl_hard, sft_own, temperature, reset, "
            "entropy at auto)"
        ),
    ] = None,
    heat_steps: Annotated[int | None, typer.Option(help="heating steps (default 20)")] = None,
    threshold: Annotated[
        float | None, typer.Option(help="heat problems under this accuracy (0.1)")
    ] = None,
    workers: WorkersOpt = None,
    batch: BatchOpt = 1,
    backend: BackendOpt = "process",
    address: AddressOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Paired ablation of Annealed-RLVR against plain RLVR over many seeds; table, figures, report.

    Interrupted? Run the same command again: finished (arm, seed) pairs are kept.
    """
    from conceptweb.experiments.ablation import Ablation, ablation_config_from_options
    from conceptweb.interfaces.ablation_report import write_ablation_report
    from conceptweb.interfaces.console import console
    from conceptweb.interfaces.progress import task_progress

    resuming = (out / "ablation.json").is_file()
    given = any(
        v is not None for v in (preset, config, seeds, arms, heat_steps, threshold)
    ) or bool(set_)
    cfg = None
    if not resuming or given:
        cfg = ablation_config_from_options(
            preset,
            str(config) if config else None,
            set_ or [],
            seeds=seeds,
            first_seed=first_seed,
            arms=parse_list(arms) or None,
            heat_steps=heat_steps,
            threshold=threshold,
        )
    where = start_backend(backend, address, workers)
    abl = Ablation.open_or_create(out, cfg)
    pending = abl.pending()
    total = len(abl.cfg.arms) * abl.cfg.seeds
    if not quiet:
        left = f"{len(pending)} of {total} runs left" if resuming else f"{total} runs"
        console.print(f"ablation into {out}: {left}")

    def job() -> None:
        with task_progress(len(pending), "ablation runs", enabled=not quiet) as advance:
            note = lambda arm, seed, i, n: advance(1, f"{arm} seed {seed}")  # noqa: E731
            abl.run(workers, note, where, batch)

    interruptible(job)
    report = write_ablation_report(abl)
    from conceptweb.interfaces.interactive import write_ablation_interactive

    interactive = write_ablation_interactive(abl)
    if not quiet:
        _print_verdicts(abl)
        console.print(f"report: {report}; arms side by side: {interactive}")


@app.command()
@user_errors
def reproduce(
    out: Annotated[Path, typer.Option("--out", "-o", help="suite directory (re-run to resume)")],
    quick: Annotated[
        bool,
        flag("--quick", help="the few-minutes smoke run: N=300, fewer seeds and steps"),
    ] = False,
    skip: Annotated[
        str | None,
        typer.Option(help="comma-separated sections to leave out: core, phase, ablation"),
    ] = None,
    size: Annotated[
        list[str] | None,
        typer.Option(
            help="override a size of the suite, KEY=VALUE (repeatable), e.g. --size seeds=3 "
            "--size core_presets=sparse; keys: N, seeds, steps, paper_steps, core_presets, "
            "sft_new, sft_steps, recovery_steps, phase_K, phase_Q, phase_seeds, phase_steps, "
            "ablation_presets, ablation_seeds, ablation_arms"
        ),
    ] = None,
    workers: WorkersOpt = None,
    batch: BatchOpt = 1,
    backend: BackendOpt = "process",
    address: AddressOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Reproduce the paper's CoNet findings over seeds, a phase diagram and the annealing ablation.

    Writes report.md and report.html (figures inline) stating each claim, the numbers measured
    over seeds, and whether it reproduced. Interrupted? Run the same command again.
    """
    from conceptweb.errors import ConceptwebError
    from conceptweb.experiments.reproduce import SECTIONS, Suite, SuiteConfig
    from conceptweb.interfaces.console import console
    from conceptweb.interfaces.progress import task_progress
    from conceptweb.interfaces.suite_report import write_suite_report

    drop = set(parse_list(skip))
    unknown = drop - set(SECTIONS)
    if unknown:
        raise ConceptwebError(
            f"--skip: unknown section(s) {', '.join(sorted(unknown))}; known: {', '.join(SECTIONS)}"
        )
    sections = [s for s in SECTIONS if s not in drop]
    cfg = SuiteConfig.with_sizes(quick, size or [], sections=sections)
    where = start_backend(backend, address, workers)
    suite = Suite.open_or_create(out, cfg)
    total, pending = suite.n_runs(), suite.n_runs(pending_only=True)
    if not quiet:
        left = f"{pending} of {total} runs left" if pending < total else f"{total} runs"
        kind = "quick smoke run" if quick else "full"
        console.print(f"reproduction suite ({kind}) into {out}: {left}")

    def job() -> None:
        with task_progress(pending, "suite runs", enabled=not quiet) as advance:
            suite.run(workers, lambda note: advance(1, note), where, batch)

    interruptible(job)
    _run_reports(suite)
    report = write_suite_report(suite)
    if not quiet:
        _print_claims(suite)
        console.print(f"report: {report} (and report.html)")


@app.command()
@user_errors
def sweep(
    out: Annotated[Path, typer.Option("--out", "-o", help="sweep directory (re-run to resume)")],
    preset: PresetOpt = None,
    config: ConfigOpt = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            "-s",
            help="KEY=VALUE (fixed) or KEY=v1,v2,... (an axis of the grid); repeatable",
        ),
    ] = None,
    workers: WorkersOpt = None,
    batch: BatchOpt = 1,
    backend: BackendOpt = "process",
    address: AddressOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """One CoNet run per point of a grid of --set values, analysed and gathered into one table.

    Example: conceptweb sweep --preset sparse --set model.K=4,8,16 --set seed=0,1,2 --out sw
    writes sw/results.parquet and sw/results.csv (one row per run: the grid values, the final
    reward, the analysis summary). Interrupted? Run the same command again (or just
    `conceptweb sweep --out sw`): finished runs are kept, cut ones resume.
    """
    from conceptweb.experiments.explore import parse_axis
    from conceptweb.experiments.sweep import Sweep, sweep_config_from_options
    from conceptweb.interfaces.console import console
    from conceptweb.interfaces.progress import task_progress
    from conceptweb.rundir import atomic_write_text

    cfg = None
    if preset or config or set_ or not (out / "sweep.json").is_file():
        cfg = sweep_config_from_options(preset, str(config) if config else None, set_ or [])
    where = start_backend(backend, address, workers)
    sw = Sweep.open_or_create(out, cfg)
    pending = sw.pending()
    if not quiet:
        total = len(sw.cfg.points())
        left = f"{len(pending)} of {total} runs left"
        console.print(f"sweep into {out}: {left}", highlight=False, soft_wrap=True)

    def job() -> None:
        with task_progress(len(pending), "sweep runs", enabled=not quiet) as advance:
            sw.run(workers, lambda name: advance(1, name), where, batch)

    interruptible(job)
    table = sw.read_results()
    atomic_write_text(out / "results.csv", table.to_csv(index=False))
    if not quiet:
        shown = ("final_reward", "two_stage.knee_step", "v_shape.is_v", "web.final_avg_degree")
        cols = ["run", *(parse_axis(a)[0] for a in sw.cfg.axes), *(c for c in shown if c in table)]
        console.print(table[cols].to_string(index=False), highlight=False, soft_wrap=True)
        where_to = f"results: {out / 'results.parquet'} (and results.csv)"
        console.print(where_to, highlight=False, soft_wrap=True)


def _run_reports(suite: Any) -> None:
    """Figures and report of the seed-0 run of each core preset and of the SFT experiment."""
    from conceptweb.analysis.summary import analyze
    from conceptweb.interfaces.figures import run_figures
    from conceptweb.interfaces.report import write_run_report
    from conceptweb.rundir import RunDir

    runs = suite.read_runs()
    if not len(runs):
        return
    for path in runs[(runs["seed"] == 0) & runs["group"].isin(["core", "sft"])]["path"]:
        run = RunDir.open(path)
        if (run.path / "report.md").is_file():
            continue
        analysis = analyze(run)
        write_run_report(run, analysis.summary, run_figures(analysis))


def _print_claims(suite: Any) -> None:
    from conceptweb.experiments.reproduce import evaluate_claims
    from conceptweb.interfaces.console import print_table
    from conceptweb.interfaces.suite_report import claim_measured

    runs = suite.read_runs()
    if not len(runs) or not (runs["group"] == "core").any():
        return
    rows = [
        [c.key, c.verdict, claim_measured(c)]
        for c in evaluate_claims(runs, suite.cfg.steps, {}, suite.cfg)
    ]
    title = "the paper's claims on CoNet" + (" (quick: provisional)" if suite.cfg.quick else "")
    print_table(["claim", "verdict", "measured"], rows, title, wrap=("verdict", "measured"))


def _print_verdicts(abl: Any) -> None:
    from conceptweb.interfaces.console import print_table
    from conceptweb.interfaces.numbers import fmt

    comp = abl.comparisons()
    rows = []
    for _, r in comp[(comp["metric"] == "final_acc")].iterrows():
        if isinstance(r.get("verdict"), str):
            ci = f"[{fmt(r['diff_ci_low'], '+.4f')}, {fmt(r['diff_ci_high'], '+.4f')}]"
            verdict = {"no significant difference": "n.s."}.get(r["verdict"], r["verdict"])
            rows.append(
                [
                    r["arm"],
                    fmt(r["mean"], ".4f"),
                    fmt(r["diff_mean_diff"], "+.4f"),
                    ci,
                    fmt(r["diff_p_t"]),
                    fmt(r["diff_p_holm"]),
                    verdict,
                ]
            )
        else:
            rows.append([r["arm"], fmt(r["mean"], ".4f"), "reference", "", "", "", ""])
    head = ["arm", "mean", "diff", "95% CI", "p (t)", "p (Holm)", "verdict"]
    print_table(head, rows, "final train accuracy: arm vs plain (paired)", wrap=("arm",))
