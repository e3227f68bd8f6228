"""Annealed-RLVR on TRL: GRPO until the trigger fires, SFT heating, then GRPO again."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from conceptweb.algorithms.heating import FixedStepTrigger, Trigger
from conceptweb.errors import ConceptwebError
from conceptweb.llm.config import (
    LLMAnnealConfig,
    LLMRunConfig,
    llm_config_to_dict,
    validate_llm_config,
)
from conceptweb.llm.data import LoadedProblems, load_training_problems, to_rows
from conceptweb.llm.heat import (
    AtTrainBegin,
    SFTRecorder,
    heated_checkpoint,
    latest_own_completions,
    probe,
    probe_batch_size,
    run_sft,
    sft_rows,
)
from conceptweb.llm.models import (
    build_scratch_model,
    build_wordlevel_tokenizer,
    check_model_source,
    load_pretrained,
    save_model,
    trainer_precision_flags,
    weights_dtype,
)
from conceptweb.llm.monitor import Monitor, RecordBook, truncate_records
from conceptweb.llm.recorder import (
    COMPLETIONS_TABLE,
    CompletionRecorder,
    completions_frame,
    initial_rows,
    recorded_rows,
)
from conceptweb.llm.rewards import (
    Task,
    WalkTask,
    is_thinking_tokenizer,
    make_task,
    node_token,
    resolve_reward,
)
from conceptweb.llm.runtime import (
    barrier,
    device_flags,
    distributed_state,
    free_memory,
    is_main_process,
    quiet_libraries,
    quiet_trainer,
    world_size,
)
from conceptweb.llm.sentinel import make_sentinel, training_generator
from conceptweb.rundir import RunDir, atomic_write_json

STATE_FILE = "llm_state.json"


@dataclass
class Setup:
    """Everything checked before training: the task, the problems, the batch shape."""

    cfg: LLMRunConfig
    task: Task
    data: LoadedProblems
    grad_accum: int

    @property
    def n_problems(self) -> int:
        return len(self.data.problems)

    @property
    def has_solution(self) -> np.ndarray:
        return np.array([p.solution is not None for p in self.data.problems], dtype=bool)


@dataclass
class RunState:
    """Where an LLM run is: phase ('rl', 'heat', 'done'), heating steps done, heats so far."""

    phase: str = "rl"
    offset: int = 0
    heats: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def load(cls, run: RunDir) -> RunState:
        path = run.path / STATE_FILE
        if not path.is_file():
            return cls()
        return cls(**json.loads(path.read_text()))

    def save(self, run: RunDir) -> None:
        if is_main_process():
            atomic_write_json(run.path / STATE_FILE, asdict(self))


def prepare(cfg: LLMRunConfig) -> Setup:
    """Check the config against the world before anything is trained (or a run dir made)."""
    quiet_libraries(cfg.torch_threads)
    reward = "loose" if cfg.task.reward == "auto" else cfg.task.reward  # auto: once loaded
    task = make_task(cfg.task.kind, cfg.task.graph, cfg.task.max_walk, reward)
    if cfg.model.name_or_path is not None:
        check_model_source(cfg.model.name_or_path)
    make_trigger(cfg.anneal)  # fail early if the detector is missing
    check_parallel_setup(cfg)
    check_backends(cfg)
    if cfg.grpo.beta > 0 and cfg.grpo.reference_model is not None:
        check_model_source(cfg.grpo.reference_model)
    data = load_training_problems(cfg.data, task, cfg.seed)
    g = cfg.grpo
    per_step = g.prompts_per_step * g.num_generations
    per_micro = g.per_device_batch_size * world_size()
    if per_step % per_micro:
        raise ConceptwebError(
            f"grpo.prompts_per_step * grpo.num_generations = {per_step} completions per step must be "
            f"a multiple of grpo.per_device_batch_size * processes = {per_micro}"
        )
    if g.prompts_per_step > len(data.problems):
        raise ConceptwebError(
            f"grpo.prompts_per_step={g.prompts_per_step} exceeds the {len(data.problems)} problems"
        )
    if (
        cfg.anneal.mode != "off"
        and cfg.anneal.heat.targets == "reference"
        and not any(p.solution for p in data.problems)
    ):
        raise ConceptwebError(
            f"heating needs reference solutions, and {data.name} has none (set "
            "data.solution_field, or anneal.heat.targets: own)"
        )
    return Setup(cfg, task, data, per_step // per_micro)


def sharded_training(cfg: LLMRunConfig) -> str | None:
    """'DeepSpeed' or 'FSDP' when this launch trains with it (accelerate's launcher sets
    ACCELERATE_USE_DEEPSPEED/FSDP; or grpo.extra passes deepspeed/fsdp), else None."""
    env = os.environ
    if env.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true" or cfg.grpo.extra.get("deepspeed"):
        return "DeepSpeed"
    if env.get("ACCELERATE_USE_FSDP", "").lower() == "true" or cfg.grpo.extra.get("fsdp"):
        return "FSDP"
    return None


def check_parallel_setup(cfg: LLMRunConfig) -> None:
    """Refuse, before training, what cannot work under DeepSpeed or FSDP.

    Heating saves the heated weights as a plain transformers checkpoint next to TRL's
    optimizer state, and GRPO resumes from it through TRL's resume_from_checkpoint. Under
    DeepSpeed that resume reloads the module from the ZeRO shards (global_step*/), i.e. the
    pre-heat weights; under FSDP from the sharded model and optimizer folders; neither is
    written by heating, so the heated weights would be lost or the resume would fail. The
    heating probe and a sentinel set sampled with HF generate need whole weights on each
    process, which ZeRO-3 and FSDP shard. DDP (plain `accelerate launch` or torchrun) works.
    """
    sharded = sharded_training(cfg)
    if sharded is None:
        return
    if cfg.anneal.mode != "off":
        raise ConceptwebError(
            f"heating (anneal.mode {cfg.anneal.mode}) cannot resume GRPO from the heated weights "
            f"under {sharded}: launch with DDP (accelerate without a {sharded} config, or "
            "torchrun), or set anneal.mode off"
        )
    if cfg.sentinel.problems and not (cfg.grpo.use_vllm and cfg.sentinel.backend != "hf"):
        raise ConceptwebError(
            f"the sentinel set samples with HF generate, which needs whole weights, not "
            f"{sharded}'s shards: set grpo.use_vllm (TRL's vLLM engine samples it) or sentinel.problems 0"
        )


def check_backends(cfg: LLMRunConfig) -> None:
    """The sentinel set and the heating probe sample with TRL's vLLM engine (backend vllm)
    only when GRPO generates with it: refuse otherwise, before anything is written."""
    asked = {
        "sentinel.backend": cfg.sentinel.problems > 0 and cfg.sentinel.backend == "vllm",
        "anneal.heat.probe_backend": cfg.anneal.mode != "off"
        and cfg.anneal.heat.probe
        and cfg.anneal.heat.probe_backend == "vllm",
    }
    for name, vllm in asked.items():
        if vllm and not cfg.grpo.use_vllm:
            raise ConceptwebError(
                f"{name} vllm samples with TRL's vLLM engine: set grpo.use_vllm, or {name} auto"
            )


def make_trigger(anneal: LLMAnnealConfig) -> Trigger | None:
    """None, a fixed-step trigger, or the online frustration detector."""
    if anneal.mode == "at":
        return FixedStepTrigger(int(anneal.at_step or 0))
    if anneal.mode == "auto":
        try:
            from conceptweb.analysis.detector import FrustrationDetector
        except ImportError as exc:
            raise ConceptwebError(
                f"anneal.mode auto needs the frustration detector ({exc})"
            ) from None
        return FrustrationDetector.from_config(anneal.detector)
    return None


def initial_model(setup: Setup, run: RunDir) -> tuple[Any, Any]:
    """The model to start from: loaded by name/path, or built locally (and kept in run/init)."""
    cfg = setup.cfg
    init = run.path / "init"
    if cfg.model.name_or_path is not None:
        return load_pretrained(cfg.model)
    if (init / "config.json").is_file():
        return load_pretrained(cfg.model, str(init))
    d = cfg.data
    texts = [d.prompt_template.replace("{question}", p.question) for p in setup.data.problems]
    texts += [p.answer for p in setup.data.problems]
    texts += [p.solution for p in setup.data.problems if p.solution]
    extra = []
    if isinstance(setup.task, WalkTask):
        extra = [node_token(i) for i in range(len(setup.task.neighbors))]
    tokenizer = build_wordlevel_tokenizer(texts, extra)
    assert cfg.model.scratch is not None
    model = build_scratch_model(cfg.model.scratch, tokenizer, seed=cfg.seed)
    if is_main_process():
        save_model(model, tokenizer, init)
    barrier()
    return model, tokenizer


def init_from_overrides(init_run: str | Path) -> dict[str, Any]:
    """Config overrides that start a run from an earlier run's final model (a stage chain).

    The policy starts from INIT/final; the KL reference stays the earlier run's reference (its
    `grpo.reference_model`, else its base model), so every stage regularises towards the same
    base model as DeepScaleR's stages did.
    """
    run = RunDir.open(init_run)
    final = run.path / "final"
    if not (final / "config.json").is_file():
        raise ConceptwebError(f"{run.path} has no final model ({final}); finish that run first")
    prev = run.read_config()
    ref = (prev.get("grpo") or {}).get("reference_model") or (prev.get("model") or {}).get(
        "name_or_path"
    )
    return {
        "model": {"name_or_path": str(final), "scratch": None},
        "grpo": {"reference_model": ref or str(run.path / "init")},
        "init_from": str(run.path),
    }


def keep_schedule_horizon(trainer: Any, horizon: int) -> None:
    """Build the trainer's LR schedule over `horizon` steps, whatever its max_steps.

    GRPO after heating runs `steps - offset` steps; a schedule built over that would jump at
    the phase switch. Over the run's whole budget, the schedule continues where it left off
    (a schedule that decays reaches its end only if no heating took steps from GRPO).
    """
    create = trainer.create_scheduler

    def create_over_horizon(num_training_steps: int, optimizer: Any = None) -> Any:
        return create(num_training_steps=horizon, optimizer=optimizer)

    trainer.create_scheduler = create_over_horizon


def reference_source(cfg: LLMRunConfig, run: RunDir) -> str:
    """The KL reference: the configured one, else the base model (a scratch model's step 0).

    TRL loads the reference from the policy's `config._name_or_path`, which after heating is
    the heated checkpoint; setting it to this path before each GRPO phase keeps the reference
    the same in every phase and after `--resume`.
    """
    if cfg.grpo.reference_model is not None:
        return cfg.grpo.reference_model
    if cfg.model.name_or_path is not None:
        return cfg.model.name_or_path
    return str(run.path / "init")


def grpo_config(setup: Setup, run: RunDir, max_steps: int) -> Any:
    """trl.GRPOConfig for this run (logging every step: the monitor needs TRL's per-step log)."""
    from trl import GRPOConfig

    cfg, g = setup.cfg, setup.cfg.grpo
    kwargs: dict[str, Any] = {
        "output_dir": str(run.path / "checkpoints"),
        "max_steps": max_steps,
        "per_device_train_batch_size": g.per_device_batch_size,
        "gradient_accumulation_steps": setup.grad_accum,
        "num_generations": g.num_generations,
        "max_completion_length": g.max_completion_length,
        "temperature": g.temperature,
        "top_p": g.top_p,
        "beta": g.beta,
        "epsilon": g.epsilon,
        "num_iterations": g.num_iterations,
        "loss_type": g.loss_type,
        "scale_rewards": g.scale_rewards,
        "mask_truncated_completions": g.mask_truncated_completions,
        "learning_rate": g.learning_rate,
        "lr_scheduler_type": g.lr_scheduler_type,
        "warmup_steps": g.warmup_steps,
        "weight_decay": g.weight_decay,
        "max_grad_norm": g.max_grad_norm,
        "logging_steps": 1,
        "save_strategy": "steps",
        "save_steps": cfg.save_steps,
        "save_total_limit": cfg.save_total_limit,
        "report_to": list(cfg.report_to),
        "seed": cfg.seed,
        "data_seed": cfg.seed,
        **trainer_precision_flags(cfg.model),  # fp32 master weights, bf16 autocast on GPUs
        **device_flags(),
        "gradient_checkpointing": cfg.model.gradient_checkpointing,
        "use_vllm": g.use_vllm,
        "vllm_mode": g.vllm_mode,
        "disable_tqdm": True,
        "log_completions": False,
    }
    kwargs.update(g.extra)
    if "tensorboard" in kwargs["report_to"]:
        # TRL's TensorBoard callback writes where this says (default: under output_dir)
        os.environ.setdefault("TENSORBOARD_LOGGING_DIR", str(run.path / "tensorboard"))
    try:
        return GRPOConfig(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConceptwebError(f"invalid GRPO settings: {exc}") from None


def checkpoints(run: RunDir) -> dict[int, Path]:
    """TRL checkpoints of the run: GRPO step -> directory."""
    root = run.path / "checkpoints"
    if not root.is_dir():
        return {}
    out = {}
    for p in root.iterdir():
        name = p.name.removeprefix("checkpoint-")
        if p.is_dir() and name.isdigit() and (p / "trainer_state.json").is_file():
            out[int(name)] = p
    return out


def resume_point(run: RunDir, state: RunState) -> tuple[Path | None, int]:
    """The checkpoint GRPO continues from (None: the start) and its GRPO step."""
    ckpts = checkpoints(run)
    last = max(ckpts) if ckpts else None
    done = [h for h in state.heats if h.get("done") and not h.get("skipped")]
    if done and (last is None or last <= done[-1]["trl_step"]):
        return run.path / done[-1]["checkpoint"], int(done[-1]["trl_step"])
    if last is not None:
        return ckpts[last], last
    return None, 0


class Orchestrator:
    """Runs (or resumes) an Annealed-RLVR run of an LLM into a run directory.

    The run directory holds config.json (the resolved config), run.json (kind "llm"), the records
    (metrics.parquet, problems.parquet, heats.parquet), TRL's checkpoints (checkpoints/checkpoint-N,
    N = GRPO steps done), heat/heat-i/checkpoint-g (the heated checkpoint GRPO resumes from),
    init/ (a locally built model and its tokenizer) and final/ (the trained model).

    Run steps count GRPO and heating steps together: run step = TRL step + heating steps before it.
    """

    def __init__(
        self,
        setup: Setup,
        run: RunDir,
        on_step: Callable[[dict[str, Any]], None] | None = None,
        echo: Callable[[str], None] = print,
    ) -> None:
        self.setup = setup
        self.cfg = setup.cfg
        self.run_dir = run
        self.on_step = on_step
        self.echo = echo if is_main_process() else _silent  # one voice for all processes
        self.trigger = make_trigger(self.cfg.anneal)
        self.state = RunState.load(run)
        self.completions: list[dict[str, Any]] = []
        self.dataset_rows = to_rows(
            setup.data.problems,
            self.cfg.data.prompt_template,
            self.cfg.data.chat,
            self.cfg.data.system_prompt,
        )

    def run(self, resume: bool = False) -> RunDir:
        run, state = self.run_dir, self.state
        model, tokenizer = initial_model(self.setup, run)
        self._resolve_reward(tokenizer)
        if state.phase == "heat" and not (self._preheat_dir(state.heats[-1])).is_dir():
            state.heats.pop()  # killed between the decision and TRL's checkpoint: undo it
            state.phase = "rl"
        start, trl_step = resume_point(run, state) if resume else (None, 0)
        if state.phase == "heat":
            trl_step = int(state.heats[-1]["trl_step"])
        up_to = trl_step + state.offset
        if resume:  # the appended rows after the resume point go, before anything reads them
            if is_main_process():
                truncate_records(run, up_to)
            barrier()
        conf = self.cfg.anneal.detector.confidence
        book = (
            RecordBook.from_run(run, self.setup.n_problems, up_to, conf)
            if resume
            else RecordBook(self.setup.n_problems, conf)
        )
        self.completions = recorded_rows(run, up_to) if resume else []
        if up_to == 0 and not any(r["step"] == 0 for r in self.completions):
            self._record_initial(model, tokenizer)
        while state.phase != "done":
            if state.phase == "heat":
                del model
                free_memory()
                model, start = self._heat(book, tokenizer)
                continue
            stopped = self._grpo(model, tokenizer, book, start)
            if stopped is None:
                state.phase = "done"
            else:
                state.phase = "heat"
            state.save(run)
        self._finish(model, tokenizer, book)
        return run

    def _record_initial(self, model: Any, tokenizer: Any) -> None:
        """record_initial completions of the initial model, written at step 0 before GRPO."""
        n = self.cfg.record_initial
        if n <= 0:
            return
        self.echo(f"sampling {n} completions of the initial model (record_initial)")
        generator = training_generator(
            self.cfg, model, tokenizer, None, "hf", probe_batch_size(self.cfg), "record_initial"
        )
        rows = initial_rows(generator, self.setup.data.problems, self.setup.task, self.cfg, n)
        self.completions.extend(rows)
        if is_main_process():
            self.run_dir.append_table(COMPLETIONS_TABLE, completions_frame(rows))
        barrier()

    def _resolve_reward(self, tokenizer: Any) -> None:
        """task.reward auto: DeepScaleR's reward for a thinking model's chat template."""
        t = self.cfg.task
        if t.kind != "math":
            return
        reward = resolve_reward(t.reward, tokenizer)
        self.setup.task = make_task(t.kind, t.graph, t.max_walk, reward)
        if is_main_process():
            self.run_dir.update_meta(reward=reward)

    # -- phases -------------------------------------------------------------------------------
    def _grpo(self, model: Any, tokenizer: Any, book: RecordBook, start: Path | None) -> Any:
        """GRPO until the end, or until the trigger fires (then returns the decision)."""
        from datasets import Dataset
        from trl import GRPOTrainer

        cfg, state = self.cfg, self.state
        heats_done = len(state.heats)
        monitor = Monitor(
            book,
            self.setup.task,
            run=self.run_dir,
            step_offset=state.offset,
            trigger=self.trigger,
            heats_left=cfg.anneal.max_heats - heats_done,
            threshold=cfg.anneal.heat.threshold,
            recent=cfg.anneal.heat.recent,
            has_solution=self.setup.has_solution,
            flush_every=cfg.flush_every,
            on_step=self.on_step,
            on_decision=self._on_decision,
            report=bool(cfg.report_to),
            targets=cfg.anneal.heat.targets,
        )
        recorder = CompletionRecorder(
            self.setup.task,
            cfg.record_completions,
            seed=cfg.seed,
            run=self.run_dir,
            step_offset=state.offset,
            end_ids=tuple(
                i for i in (tokenizer.eos_token_id, tokenizer.pad_token_id) if i is not None
            ),
            rows=self.completions,
            flush_every=cfg.flush_every,
        )
        if cfg.grpo.beta > 0:  # TRL builds the KL reference from config._name_or_path
            model.config._name_or_path = reference_source(cfg, self.run_dir)
        trainer = quiet_trainer(
            GRPOTrainer(
                model=model,
                reward_funcs=recorder.wrap(monitor.correctness),
                args=grpo_config(self.setup, self.run_dir, cfg.steps - state.offset),
                train_dataset=Dataset.from_list(self.dataset_rows),
                processing_class=tokenizer,
                callbacks=[monitor, recorder],
            )
        )
        monitor.sentinel = make_sentinel(
            cfg, self.setup.data, self.setup.task, model, tokenizer, trainer
        )
        heat = state.heats[-1] if state.heats else None
        if heat is not None and heat.get("probe_pending"):
            generator = training_generator(
                cfg,
                model,
                tokenizer,
                trainer,
                cfg.anneal.heat.probe_backend,
                probe_batch_size(cfg),
                "anneal.heat.probe_backend",
            )
            trainer.add_callback(AtTrainBegin(lambda: self._probe(heat, book, generator)))
        if cfg.report_to:  # first, so that TRL's reporters see what the monitor adds to a log
            trainer.callback_handler.callbacks.remove(monitor)
            trainer.callback_handler.callbacks.insert(0, monitor)
        keep_schedule_horizon(trainer, cfg.steps)
        trainer.train(resume_from_checkpoint=str(start) if start is not None else None)
        del trainer
        free_memory()
        return monitor.stopped

    def _on_decision(self, decision: Any) -> None:
        """Remember a heating decision at once (a kill before the heat then resumes correctly)."""
        heat = {
            "index": len(self.state.heats) + 1,
            "step": decision.step,
            "trl_step": decision.trl_step,
            "problems": decision.problems,
            "n_problems": len(decision.problems),
            "sft_steps": self.cfg.anneal.heat.steps if decision.problems else 0,
            "done": not decision.problems,
            "skipped": not decision.problems,
        }
        self.state.heats.append(heat)
        if decision.problems:
            self.echo(
                f"heating at step {decision.step}: {len(decision.problems)} problems under "
                f"accuracy {self.cfg.anneal.heat.threshold}"
            )
            self.state.phase = "heat"
        else:
            self.echo(
                f"trigger fired at step {decision.step}, but no problem is under the threshold"
            )
        self.state.save(self.run_dir)

    def _preheat_dir(self, heat: dict[str, Any]) -> Path:
        return self.run_dir.path / "checkpoints" / f"checkpoint-{heat['trl_step']}"

    def _heat(self, book: RecordBook, tokenizer: Any) -> tuple[Any, Path]:
        """SFT on the selected problems from the pre-heating checkpoint; returns (model, heated ckpt)."""
        from transformers import AutoModelForCausalLM

        cfg, state, run = self.cfg, self.state, self.run_dir
        heat = state.heats[-1]
        source = self._preheat_dir(heat)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=weights_dtype(cfg.model))
        chosen = [self.setup.data.problems[q] for q in heat["problems"]]
        thinking = cfg.data.chat and is_thinking_tokenizer(tokenizer)  # prompts end in <think>
        own = None
        if cfg.anneal.heat.targets != "reference":
            barrier()  # the writer has flushed the own completions at the decision's save
            own = latest_own_completions(run, heat["problems"], int(heat["step"]))
        rows = sft_rows(chosen, cfg, thinking=thinking, own=own)
        hdir = run.path / "heat" / f"heat-{heat['index']}"
        if is_main_process():
            atomic_write_json(
                hdir / "sft_data.json",
                {
                    "problems": [p.id for p in chosen],
                    "targets": cfg.anneal.heat.targets,
                    "rows": rows,
                },
            )
        h = cfg.anneal.heat
        first = int(heat["step"]) + 1
        book.metrics = [r for r in book.metrics if r["step"] < first]
        recorder = SFTRecorder(book, first, len(chosen))
        run_sft(
            model,
            tokenizer,
            rows,
            steps=h.steps,
            learning_rate=h.learning_rate,
            batch_size=h.batch_size,
            max_length=h.max_length,
            output_dir=hdir / "sft",
            seed=cfg.seed,
            bf16=trainer_precision_flags(cfg.model)["bf16"],
            callbacks=[recorder],
            gradient_checkpointing=cfg.model.gradient_checkpointing,
        )
        last = first + h.steps - 1
        dest = hdir / f"checkpoint-{heat['trl_step']}"
        if is_main_process():
            heated_checkpoint(model, tokenizer, source, dest)
        barrier()
        heat.update(
            done=True,
            first_sft_step=first,
            last_sft_step=last,
            checkpoint=str(dest.relative_to(run.path)),
            probe_pending=bool(h.probe and chosen),  # when GRPO resumes from the heated weights
        )
        state.offset += h.steps
        state.phase = "rl"
        if is_main_process():
            self._write_heats(book)
            book.write(run)
        book.discard_pending()
        state.save(run)
        return model, dest

    def _probe(self, heat: dict[str, Any], book: RecordBook, generator: Any) -> None:
        """Sample the heated problems from the heated weights, at the start of the GRPO phase
        that resumes from them (with the generator GRPO's phase samples with: TRL's vLLM
        engine or HF generate); recorded at the last heating step (phase `sft`)."""
        cfg, run = self.cfg, self.run_dir
        chosen = [self.setup.data.problems[q] for q in heat["problems"]]
        completions = probe(
            generator, chosen[: cfg.anneal.heat.probe_max], self.setup.task, cfg, cfg.seed
        )
        last = int(heat["last_sft_step"])
        per_problem = book.add_probe(last, completions)
        row = book.row(last)
        if row is not None:
            row["probe_accuracy"] = float(per_problem["accuracy"].mean())
        self.echo(
            f"after heating, the {len(per_problem)} probed problems have mean accuracy "
            f"{per_problem['accuracy'].mean():.3f} (sampled with "
            f"{getattr(generator, 'backend', '?')})"
        )
        if is_main_process():
            book.write(run)
        book.discard_pending()
        heat.update(probe_pending=False, probe_backend=getattr(generator, "backend", "?"))
        self.state.save(run)

    def _write_heats(self, book: RecordBook) -> None:
        recent = book.history.recent_accuracy(self.cfg.anneal.heat.recent)
        rows = [
            {
                "heat": h["index"],
                "step": h["step"],
                "problem": q,
                "recent_accuracy": float(recent[q]),
            }
            for h in self.state.heats
            for q in h["problems"]
        ]
        if rows:
            self.run_dir.write_table("heats", pd.DataFrame(rows))

    def _finish(self, model: Any, tokenizer: Any, book: RecordBook) -> None:
        """Save the trained model to run/final, close the records, evaluate if asked."""
        run = self.run_dir
        final = run.path / "final"
        if is_main_process():
            book.write(run)
            save_model(model, tokenizer, final)
            tail = [r["reward_mean"] for r in book.metrics if r["phase"] == "rl"][-10:]
            run.update_meta(
                status="finished",
                final_model="final",
                reward_last10=float(np.mean(tail)) if tail else math.nan,
                heats=[{k: v for k, v in h.items() if k != "problems"} for h in self.state.heats],
            )
        book.discard_pending()
        barrier()
        if self.cfg.eval.at_end:  # every process evaluates its shard of the problems
            from conceptweb.llm.evaluate import evaluate_model, write_results

            results = evaluate_model(
                final, self.cfg, self.setup.data, self.setup.task, echo=self.echo
            )
            if is_main_process():
                write_results(results, run.path / "eval_llm")


def _silent(message: str) -> None:
    pass


def prepare_run(config: LLMRunConfig | None, out: str | Path, resume: bool) -> tuple[Setup, RunDir]:
    """Validate, then create the run directory (or open it to resume)."""
    if resume:
        run = RunDir.open(out)
        if run.kind != "llm":
            raise ConceptwebError(f"{out} is a {run.kind} run, not an LLM run")
        cfg = validate_llm_config(run.read_config())
        if run.read_meta().get("status") == "finished":
            raise ConceptwebError(f"{out} has already finished")
        return prepare(cfg), run
    if config is None:
        raise ConceptwebError("a new run needs a config")
    setup = prepare(config)
    state = distributed_state()
    if state.is_main_process:
        run = RunDir.create(out, llm_config_to_dict(config), kind="llm")
        run.update_meta(data=setup.data.summary())
    state.wait_for_everyone()
    return setup, RunDir.open(out)


def train_llm(
    config: LLMRunConfig | None,
    out: str | Path,
    *,
    resume: bool = False,
    on_step: Callable[[dict[str, Any]], None] | None = None,
    echo: Callable[[str], None] = print,
) -> RunDir:
    """Train (or resume) an LLM run into `out`; errors in the config surface before training."""
    setup, run = prepare_run(config, out, resume)
    echo(setup.data.report())
    return Orchestrator(setup, run, on_step=on_step, echo=echo).run(resume=resume)
