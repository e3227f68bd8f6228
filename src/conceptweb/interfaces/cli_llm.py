"""The `conceptweb llm` command group: train, config, eval, score, graph, datasets, conet-demo, verl."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from conceptweb.errors import ConceptwebError
from conceptweb.interfaces.cli_common import (
    AnnealOpt,
    QuietOpt,
    ResumeOpt,
    flag,
    group,
    parse_anneal,
    user_errors,
)

app = group(
    "RLVR diagnostics and Annealed-RLVR for real language models on TRL "
    "(needs conceptweb\\[llm]: pip install torch==2.13.0 'conceptweb\\[llm]')."
)

SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="override a config value, e.g. --set grpo.learning_rate=1e-6"),
]


def _echo(msg: str) -> None:
    typer.echo(msg, err=True)


@app.command()
@user_errors
def train(
    out: Annotated[Path, typer.Option("--out", "-o", help="run directory to write")],
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="YAML/TOML/JSON LLM run config")
    ] = None,
    set_: SetOpt = None,
    steps: Annotated[int | None, typer.Option(help="total steps (GRPO + heating)")] = None,
    anneal: AnnealOpt = None,
    init_from: Annotated[
        Path | None,
        typer.Option(
            "--init-from",
            help="start from this earlier run's final model, keeping its KL reference "
            "(chains DeepScaleR's 8k/16k/24k stages)",
        ),
    ] = None,
    resume: ResumeOpt = False,
    quiet: QuietOpt = False,
    log: Annotated[
        list[str] | None,
        typer.Option(
            help="TRL's report_to (repeatable): tensorboard, wandb, trackio or mlflow; the "
            "monitor's quantities (records, F(t), the detector's signals) are added"
        ),
    ] = None,
) -> None:
    """RLVR (GRPO on TRL) with the dynamics monitor, and Annealed-RLVR; records into --out."""
    from conceptweb.llm import require_llm

    require_llm()
    from conceptweb.config import deep_merge
    from conceptweb.interfaces.progress import training_progress
    from conceptweb.llm.config import resolve_llm_config
    from conceptweb.llm.train import Orchestrator, init_from_overrides, prepare_run

    if resume:
        if config or set_ or steps is not None or anneal or log or init_from:
            raise ConceptwebError("--resume continues the saved config; give only --out")
        cfg = None
    else:
        if config is None:
            raise ConceptwebError("give --config (e.g. configs/tiny-cpu.yaml), or --resume")
        extra = parse_anneal(anneal)
        if steps is not None:
            extra = deep_merge(extra, {"steps": steps})
        if log:
            from conceptweb.trackers import check_trackers

            extra = deep_merge(extra, {"report_to": check_trackers(log)})
        if init_from is not None:
            extra = deep_merge(extra, init_from_overrides(init_from))
        cfg = resolve_llm_config(config, set_ or [], extra)
    setup, run = prepare_run(cfg, out, resume)
    _echo(setup.data.report())
    start = int(run.read_meta().get("last_step", 0)) if resume else 0
    with training_progress(
        setup.cfg.steps, start, str(out), setup.n_problems, enabled=not quiet
    ) as update:
        Orchestrator(setup, run, on_step=update, echo=_echo).run(resume=resume)
    _echo(
        f"run written to {out} (model in {out}/final); analyse it with `conceptweb analyze {out}`"
    )


@app.command("config")
@user_errors
def show_config(
    config: Annotated[Path, typer.Option("--config", "-c", help="YAML/TOML/JSON LLM run config")],
    set_: SetOpt = None,
) -> None:
    """Print the fully resolved LLM run config (YAML), with the weights and compute dtypes."""
    import yaml

    from conceptweb.llm.config import llm_config_to_dict, resolve_llm_config
    from conceptweb.llm.models import precision

    cfg = resolve_llm_config(config, set_ or [], {})
    typer.echo(yaml.safe_dump(llm_config_to_dict(cfg), sort_keys=False).rstrip())
    p = precision(cfg.model)
    typer.echo(
        f"# precision here: weights {p['weights_dtype']}, compute {p['compute_dtype']} "
        f"({p['mode']}); auto compute is bfloat16 on a bf16-capable GPU"
    )


@app.command("eval")
@user_errors
def eval_(
    model: Annotated[str, typer.Option("--model", "-m", help="model directory or hub name")],
    run: Annotated[
        Path | None,
        typer.Option(
            help="run directory: its config gives the prompt format, task and ID problems"
        ),
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="LLM run config")] = None,
    datasets: Annotated[
        str | None,
        typer.Option(
            help="comma-separated: train (ID sample), math500, minerva, aime24, aime25, x.jsonl"
        ),
    ] = None,
    k: Annotated[int | None, typer.Option(help="samples per problem")] = None,
    id_problems: Annotated[
        int | None, typer.Option("--id-problems", help="size of the fixed ID sample")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="write OUT.json and OUT.md")
    ] = None,
    set_: SetOpt = None,
) -> None:
    """Evaluate a model: ID best@k/mean@k on training problems, OOD on named benchmarks."""
    from conceptweb.llm import require_llm

    require_llm()
    from conceptweb.config import deep_merge, load_config_file, parse_set
    from conceptweb.llm.config import validate_llm_config
    from conceptweb.llm.evaluate import evaluate_model, results_table, write_results
    from conceptweb.llm.rewards import make_task
    from conceptweb.rundir import RunDir

    if run is not None and config is not None:
        raise ConceptwebError("give --run or --config, not both")
    data: dict[str, Any] = {}
    if run is not None:
        data = RunDir.open(run).read_config()
    elif config is not None:
        data = load_config_file(config)
    data = deep_merge(data, {"model": {"name_or_path": model, "scratch": None}})
    if id_problems is not None:
        data = deep_merge(data, {"eval": {"id_problems": id_problems}})
    for item in set_ or []:
        data = deep_merge(data, parse_set(item))
    cfg = validate_llm_config(data)
    task = make_task(cfg.task.kind, cfg.task.graph, cfg.task.max_walk, _reward_for(cfg, model))
    names = [n.strip() for n in datasets.split(",") if n.strip()] if datasets else None
    train_data = None
    if (names is None or "train" in names) and (run is not None or config is not None):
        from conceptweb.llm.data import load_training_problems

        train_data = load_training_problems(cfg.data, task, cfg.seed)
    elif names is not None and "train" in names:
        raise ConceptwebError("the ID set 'train' needs --run or --config (the training data)")
    results = evaluate_model(model, cfg, train_data, task, datasets=names, k=k, echo=_echo)
    from conceptweb.llm.runtime import is_main_process

    if not is_main_process():  # under accelerate launch: every process evaluated its shard
        return
    typer.echo(results_table(results))
    if out is not None:
        js, md = write_results(results, out)
        _echo(f"results written to {js} and {md}")


def _int_list(value: str | None, what: str) -> list[int] | None:
    if value is None:
        return None
    try:
        return [int(x) for x in value.split(",") if x.strip()]
    except ValueError:
        raise ConceptwebError(f"{what} must be comma-separated integers, got {value!r}") from None


def _layer(value: str | None) -> int | Literal["auto"] | None:
    """--layer: None, auto, or an integer."""
    if value is None or value == "auto":
        return value  # type: ignore[return-value]
    try:
        return int(value)
    except ValueError:
        raise ConceptwebError(f"--layer must be an integer or auto, got {value!r}") from None


SegmentOpt = Annotated[
    str,
    typer.Option(
        help="steps of a completion: auto (token for CoNet walks, paragraph otherwise), "
        "line, paragraph, sentence, token (whitespace word) or regex (--pattern)"
    ),
]
RepresentOpt = Annotated[
    str,
    typer.Option(
        help="hidden (the checkpoint's hidden states, mean over the step's tokens) "
        "or text (TF-IDF of the normalised text)"
    ),
]
ConceptsOpt = Annotated[
    int | None,
    typer.Option("--concepts", "-k", help="number of concepts (default: best silhouette)"),
]

FitMaxOpt = Annotated[
    int,
    typer.Option(min=2, help="the codebook is fitted on at most this many steps (a seeded sample)"),
]
MinCountOpt = Annotated[
    int,
    typer.Option(
        help="support: a concept's edges enter the web only if it has at least this many "
        "outgoing transitions in the checkpoint (1: all; analyze uses this value)"
    ),
]


@app.command("graph")
@user_errors
def graph(
    run: Annotated[Path, typer.Argument(help="LLM run directory with recorded completions")],
    segment: SegmentOpt = "auto",
    pattern: Annotated[
        str | None, typer.Option(help="--segment regex: each match is one step")
    ] = None,
    represent: RepresentOpt = "hidden",
    layer: Annotated[
        str | None,
        typer.Option(
            help="hidden-state layer: a number (0 = embeddings), or auto (the layer among "
            "1/4, 1/2, 3/4, 0.9 of the depth whose steps cluster best, by silhouette); "
            "default round(0.9 x depth)"
        ),
    ] = None,
    concepts: ConceptsOpt = None,
    sweep: Annotated[
        str | None,
        typer.Option(help="other numbers of concepts for the sensitivity of <k> (default K/2,2K)"),
    ] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="link all recorded completions, not only correct ones")
    ] = False,
    window: Annotated[
        int | None,
        typer.Option(
            help="a checkpoint takes completions of this many steps (default: since "
            "the previous checkpoint)"
        ),
    ] = None,
    steps: Annotated[str | None, typer.Option(help="only these checkpoint steps (a,b,c)")] = None,
    batch_size: Annotated[int, typer.Option(help="completions per forward pass")] = 16,
    no_normalize: Annotated[
        bool, typer.Option("--no-normalize", help="cluster raw hidden states (not unit length)")
    ] = False,
    fit_max: FitMaxOpt = 20000,
    min_count: MinCountOpt = 1,
    seed: Annotated[int, typer.Option(help="seed of the codebook and of its fitting sample")] = 0,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads")] = None,
    quiet: QuietOpt = False,
) -> None:
    """The concept web of each checkpoint of an LLM run, from its recorded completions.

    Writes RUN/graph/steps.parquet, edges.parquet and meta.json; `conceptweb analyze RUN` then
    measures the web as for CoNet. Interrupted builds resume (per-checkpoint cache). On several
    GPUs: `accelerate launch -m conceptweb llm graph RUN ...` (or torchrun): each process
    represents a share of the completions, the main one fits, links and writes."""
    from conceptweb.llm import require_llm

    require_llm()
    from conceptweb.llm.graph import GraphSettings, build_graph
    from conceptweb.llm.runtime import is_main_process

    if segment not in ("auto", "line", "paragraph", "sentence", "token", "regex"):
        raise ConceptwebError(f"unknown --segment {segment!r}")
    if represent not in ("hidden", "text"):
        raise ConceptwebError(f"unknown --represent {represent!r} (hidden or text)")
    settings = GraphSettings(
        segment=segment,  # type: ignore[arg-type]
        pattern=pattern,
        represent=represent,  # type: ignore[arg-type]
        layer=_layer(layer),
        n_concepts=concepts,
        sweep=_int_list(sweep, "--sweep"),
        include="all" if all_ else "correct",
        window=window,
        steps=_int_list(steps, "--steps"),
        batch_size=batch_size,
        normalize=not no_normalize,
        fit_max=fit_max,
        min_count=min_count,
        seed=seed,
        threads=threads,
    )

    main = is_main_process()  # one voice for all processes

    def progress(stage: str, done: int, total: int) -> None:
        if not quiet and main:
            _echo(f"{stage}: {done}/{total}")

    gdir = build_graph(run, settings, on_progress=progress)
    if main:
        _echo(f"concept graph written to {gdir}; analyse it with `conceptweb analyze {run}`")


def _reward_for(cfg: Any, model: str) -> str:
    """task.reward with auto resolved from the model's tokenizer (DeepScaleR's if thinking)."""
    from conceptweb.llm.rewards import resolve_reward

    if cfg.task.reward != "auto":
        return str(cfg.task.reward)
    try:
        from transformers import AutoTokenizer

        return resolve_reward("auto", AutoTokenizer.from_pretrained(model))
    except OSError as exc:
        raise ConceptwebError(f"cannot load the tokenizer of {model!r}: {exc}") from None


@app.command("score")
@user_errors
def score(
    completion: Annotated[str, typer.Argument(help="the completion's text, or @FILE to read it")],
    answer: Annotated[str, typer.Option("--answer", "-a", help="the gold answer")],
    reward: Annotated[
        str, typer.Option(help="deepscaler (thinking models) or loose (whole completion)")
    ] = "deepscaler",
) -> None:
    """Score one completion against an answer, and say why: 1 or 0, as training would."""
    from conceptweb.llm.rewards import deepscaler_verdict, loose_verdict

    if completion.startswith("@"):
        try:
            completion = Path(completion[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConceptwebError(f"cannot read {completion[1:]}: {exc.strerror}") from None
    verdicts = {"deepscaler": deepscaler_verdict, "loose": loose_verdict}
    if reward not in verdicts:
        raise ConceptwebError(f"--reward must be deepscaler or loose, got {reward!r}")
    ok, why = verdicts[reward](completion, answer)
    typer.echo(f"{1.0 if ok else 0.0} ({reward}: {why})")


@app.command("datasets")
def list_datasets() -> None:
    """The datasets known by name, where they come from and which fields are used."""
    from conceptweb.llm.data import DATASETS, SYNTHETIC

    lines = [
        "| name | hub id | split | question | answer | solution | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in DATASETS.items():
        answer = s.answer or "last \\boxed{} of solution"
        lines.append(
            f"| {name} | {s.hub} | {s.split} | {s.question} | {answer} | {s.solution} | {s.note} |"
        )
    for name, note in SYNTHETIC.items():
        lines.append(f"| {name} | (local) | - | problem | answer | solution | {note} |")
    typer.echo("\n".join(lines))


@app.command("conet-demo")
@user_errors
def conet_demo(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="directory for runs, figures, report.md")
    ],
    quick: Annotated[bool, flag("--quick", help="a few minutes on 2 CPU cores")] = False,
    seeds: Annotated[int | None, typer.Option(help="number of seeds")] = None,
    steps: Annotated[int | None, typer.Option(help="RL steps per run")] = None,
    set_: SetOpt = None,
) -> None:
    """A small transformer and tabular CoNet on the same graph and problems: do the two-stage
    curve, the V and frustration-induced forgetting appear in the transformer too?"""
    from conceptweb.llm import require_llm

    require_llm()
    from conceptweb.experiments.conet_demo import DemoConfig, run_demo
    from conceptweb.interfaces.conet_demo_report import write_demo_report

    cfg = DemoConfig.preset(quick=quick, seeds=seeds, steps=steps, sets=set_ or [])
    command = f"conceptweb llm conet-demo --out {out}" + (" --quick" if quick else "")
    command += f" --seeds {seeds}" if seeds is not None else ""
    command += f" --steps {steps}" if steps is not None else ""
    command += "".join(f" --set {item}" for item in set_ or [])
    report = write_demo_report(run_demo(cfg, out, echo=_echo), command)
    _echo(f"report written to {report}")


from conceptweb.interfaces import cli_verl  # noqa: E402

cli_verl.register(app)
