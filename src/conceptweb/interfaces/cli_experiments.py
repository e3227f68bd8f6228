"""CLI commands that run suites of experiments: `reproduce` and `ablate`."""

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add the experiment-suite commands to the main app."""
    from conceptweb.interfaces.cli import ConfigOpt, PresetOpt, QuietOpt, SetOpt, user_errors

    @app.command()
    @user_errors
    def ablate(
        out: Annotated[
            Path, typer.Option("--out", "-o", help="ablation directory (re-run to resume)")
        ],
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
        workers: Annotated[
            int | None, typer.Option(help="parallel processes (default: all cores)")
        ] = None,
        quiet: QuietOpt = False,
    ) -> None:
        """Paired ablation of Annealed-RLVR against plain RLVR over many seeds; table, figures, report.

        Interrupted? Run the same command again: finished (arm, seed) pairs are kept.
        """
        from conceptweb.experiments.ablation import Ablation, ablation_config_from_options
        from conceptweb.interfaces.ablation_report import write_ablation_report
        from conceptweb.interfaces.progress import console, task_progress

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
                arms=[a.strip() for a in arms.split(",")] if arms else None,
                heat_steps=heat_steps,
                threshold=threshold,
            )
        abl = Ablation.open_or_create(out, cfg)
        pending = abl.pending()
        if resuming and not quiet:
            console.print(f"{out}: {len(pending)} of {len(abl.cfg.arms) * abl.cfg.seeds} runs left")
        with task_progress(len(pending), "ablation runs", enabled=not quiet) as advance:
            abl.run(
                workers=workers, on_done=lambda arm, seed, i, n: advance(1, f"{arm} seed {seed}")
            )
        report = write_ablation_report(abl)
        if not quiet:
            _print_verdicts(abl)
            console.print(f"report: {report}")

    @app.command()
    @user_errors
    def reproduce(
        out: Annotated[
            Path, typer.Option("--out", "-o", help="suite directory (re-run to resume)")
        ],
        quick: Annotated[
            bool,
            typer.Option("--quick", help="the few-minutes version: N=300, fewer seeds and steps"),
        ] = False,
        skip: Annotated[
            str | None,
            typer.Option(help="comma-separated sections to leave out: core, phase, ablation"),
        ] = None,
        workers: Annotated[
            int | None, typer.Option(help="parallel processes (default: all cores)")
        ] = None,
        quiet: QuietOpt = False,
    ) -> None:
        """Reproduce the paper's CoNet findings over seeds, a phase diagram and the annealing ablation.

        Writes report.md and report.html (figures inline) stating each claim, the numbers measured
        over seeds, and whether it reproduced. Interrupted? Run the same command again.
        """
        from conceptweb.errors import ConceptwebError
        from conceptweb.experiments.reproduce import SECTIONS, Suite, SuiteConfig
        from conceptweb.interfaces.progress import console, task_progress
        from conceptweb.interfaces.suite_report import write_suite_report

        sections = list(SECTIONS)
        if skip:
            drop = {s.strip() for s in skip.split(",") if s.strip()}
            unknown = drop - set(SECTIONS)
            if unknown:
                raise ConceptwebError(
                    f"--skip: unknown section(s) {', '.join(sorted(unknown))}; "
                    f"known: {', '.join(SECTIONS)}"
                )
            sections = [s for s in SECTIONS if s not in drop]
        cfg = (
            SuiteConfig.quick_version(sections=sections)
            if quick
            else SuiteConfig(sections=sections)
        )
        suite = Suite.open_or_create(out, cfg)
        if not quiet:
            console.print(
                f"reproduction suite ({'quick' if quick else 'full'}): {suite.n_runs()} runs into {out}"
            )
        with task_progress(suite.n_runs(pending_only=True), "runs", enabled=not quiet) as advance:
            suite.run(workers=workers, on_done=lambda note: advance(1, note))
        _run_reports(suite, quiet)
        report = write_suite_report(suite)
        if not quiet:
            _print_claims(suite)
            console.print(f"report: {report} (and report.html)")

    def _run_reports(suite: object, quiet: bool) -> None:
        """Figures and report of the seed-0 run of each core preset and of the SFT experiment."""
        from conceptweb.analysis.summary import analyze
        from conceptweb.interfaces.figures import run_figures
        from conceptweb.interfaces.report import write_run_report
        from conceptweb.rundir import RunDir

        runs = suite.read_runs()  # type: ignore[attr-defined]
        if not len(runs):
            return
        for path in runs[(runs["seed"] == 0) & runs["group"].isin(["core", "sft"])]["path"]:
            run = RunDir.open(path)
            if (run.path / "report.md").is_file():
                continue
            analysis = analyze(run)
            write_run_report(run, analysis.summary, run_figures(analysis))

    def _print_claims(suite: object) -> None:
        from rich.table import Table

        from conceptweb.experiments.reproduce import evaluate_claims
        from conceptweb.interfaces.progress import console

        runs = suite.read_runs()  # type: ignore[attr-defined]
        if not len(runs) or not (runs["group"] == "core").any():
            return
        table = Table(title="the paper's claims on CoNet")
        table.add_column("claim")
        table.add_column("verdict")
        table.add_column("measured")
        for c in evaluate_claims(runs, suite.cfg.steps, {}):  # type: ignore[attr-defined]
            table.add_row(c.claim, c.verdict, c.measured)
        console.print(table)

    def _print_verdicts(abl: object) -> None:
        from rich.table import Table

        from conceptweb.interfaces.progress import console

        comp = abl.comparisons()  # type: ignore[attr-defined]
        fa = comp[(comp["metric"] == "final_acc")]
        table = Table(title="final train accuracy: arm vs plain (paired, 95% CI)")
        for col in ("arm", "mean", "diff", "95% CI", "p (t)", "p (Holm)", "verdict"):
            table.add_column(col)
        for _, r in fa.iterrows():
            if isinstance(r.get("verdict"), str):
                table.add_row(
                    r["arm"],
                    f"{r['mean']:.4f}",
                    f"{r['diff_mean_diff']:+.4f}",
                    f"[{r['diff_ci_low']:+.4f}, {r['diff_ci_high']:+.4f}]",
                    f"{r['diff_p_t']:.3g}",
                    f"{r['diff_p_holm']:.3g}",
                    {"no significant difference": "n.s."}.get(r["verdict"], r["verdict"]),
                )
            else:
                table.add_row(r["arm"], f"{r['mean']:.4f}", "reference", "", "", "", "")
        console.print(table)
