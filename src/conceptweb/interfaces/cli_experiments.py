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

    def _print_verdicts(abl: object) -> None:
        from rich.table import Table

        from conceptweb.interfaces.progress import console

        comp = abl.comparisons()  # type: ignore[attr-defined]
        fa = comp[(comp["metric"] == "final_acc")]
        table = Table(title="final train accuracy: arm vs plain (paired, 95% CI)")
        for col in ("arm", "mean", "diff", "95% CI", "p (t)", "verdict"):
            table.add_column(col)
        for _, r in fa.iterrows():
            if isinstance(r.get("verdict"), str):
                table.add_row(
                    r["arm"],
                    f"{r['mean']:.4f}",
                    f"{r['diff_mean_diff']:+.4f}",
                    f"[{r['diff_ci_low']:+.4f}, {r['diff_ci_high']:+.4f}]",
                    f"{r['diff_p_t']:.3g}",
                    r["verdict"],
                )
            else:
                table.add_row(r["arm"], f"{r['mean']:.4f}", "reference", "", "", "")
        console.print(table)
