"""The monitor in a user's own GRPOTrainer script: evaluation, setup checks, finish and resume."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from tests.llm.conftest import require_llm_packages

pytestmark = pytest.mark.llm
require_llm_packages()

from conceptweb.llm.monitor import Monitor, MonitorSetupError  # noqa: E402
from conceptweb.llm.rewards import MathTask  # noqa: E402
from conceptweb.rundir import RunDir  # noqa: E402


def user_script(
    out: Path,
    *,
    steps: int = 4,
    eval_steps: int | None = None,
    resume: bool = False,
    logging_steps: int = 1,
    ids: Any = None,
    drop: str | None = None,
) -> tuple[Monitor, Any]:
    """What docs/llm.md shows: the user's model, data and GRPOConfig, plus the monitor."""
    import torch
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from conceptweb.llm.config import ScratchModelConfig
    from conceptweb.llm.models import build_scratch_model, build_wordlevel_tokenizer

    torch.set_num_threads(1)
    rows = [{"prompt": f"{a} + {b} =", "answer": str(a + b)} for a in range(4) for b in range(4)]
    for i, r in enumerate(rows):
        r["problem_id"] = i if ids is None else ids(i)
    train = Dataset.from_list([{k: v for k, v in r.items() if k != drop} for r in rows])
    evalset = Dataset.from_list(rows[:5])
    tok = build_wordlevel_tokenizer([r["prompt"] + " " + r["answer"] for r in rows])
    cfg = ScratchModelConfig(
        hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, max_position_embeddings=32
    )
    model = build_scratch_model(cfg, tok, seed=0)
    monitor = Monitor.open(out, MathTask(), n_problems=len(rows), resume=resume)
    args = GRPOConfig(
        output_dir=str(out / "trl"),
        max_steps=steps,
        learning_rate=1e-3,
        per_device_train_batch_size=8,
        per_device_eval_batch_size=8,
        num_generations=4,
        max_completion_length=2,
        logging_steps=logging_steps,
        save_steps=2,
        eval_strategy="steps" if eval_steps else "no",
        eval_steps=eval_steps,
        report_to=[],
        seed=0,
        use_cpu=True,
        disable_tqdm=True,
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=monitor.correctness,
        args=args,
        train_dataset=train,
        eval_dataset=evalset if eval_steps else None,
        processing_class=tok,
        callbacks=[monitor],
    )
    return monitor, trainer


def trl_rewards(trainer: Any) -> dict[int, float]:
    return {h["step"]: h["reward"] for h in trainer.state.log_history if "reward" in h}


def test_evaluation_calls_stay_out_of_the_training_records(tmp_path: Path) -> None:
    monitor, trainer = user_script(tmp_path / "run", steps=4, eval_steps=2)
    trainer.train()
    run = RunDir.open(tmp_path / "run")
    assert run.read_meta()["status"] == "finished"  # no finish() needed in the script
    m, p, ev = run.read_metrics(), run.read_problems(), run.read_eval()
    logged = trl_rewards(trainer)
    assert list(m["step"]) == [1, 2, 3, 4] and m["trl_logged"].all()
    for _, row in m.iterrows():  # each step: its own 8 completions, TRL's reward
        assert row["n_completions"] == 8
        assert row["reward_mean"] == pytest.approx(logged[int(row["step"])], abs=1e-6)
    assert set(p.groupby("step")["n"].sum()) == {8}
    # the evaluations at steps 2 and 4 (5 prompts x 4 completions) are recorded as such
    assert set(ev["split"]) == {"trl_eval"} and sorted(set(ev["step"])) == [2, 4]
    assert set(ev.groupby("step")["G"].sum()) == {20}


def test_setup_mistakes_are_one_line_errors(tmp_path: Path) -> None:
    cases = [
        ({"logging_steps": 10}, "logging_steps=1"),
        ({"ids": lambda i: i + 100}, "problem_id 100 is outside 0..15"),
        ({"drop": "problem_id"}, "lacks column(s) problem_id"),
        ({"drop": "answer"}, "lacks column(s) answer"),
    ]
    for i, (kwargs, message) in enumerate(cases):
        monitor, trainer = user_script(tmp_path / f"r{i}", **kwargs)
        with pytest.raises(
            MonitorSetupError, match=message.replace("(", r"\(").replace(")", r"\)")
        ) as exc:
            trainer.train()
        assert "\n" not in str(exc.value)
        assert not RunDir.open(tmp_path / f"r{i}").metrics_path.exists()  # nothing half-written


def test_finish_and_resume_from_a_script(tmp_path: Path) -> None:
    out = tmp_path / "run"
    monitor, trainer = user_script(out, steps=4)
    trainer.train()
    with pytest.raises(MonitorSetupError, match="resume=True"):
        user_script(out, steps=4)
    # resume from TRL's checkpoint at step 2 and extend to 6 steps: rows 3-4 are redone
    monitor, trainer = user_script(out, steps=6, resume=True)
    trainer.train(resume_from_checkpoint=str(out / "trl" / "checkpoint-2"))
    run = RunDir.open(out)
    m = run.read_metrics()
    assert list(m["step"]) == [1, 2, 3, 4, 5, 6] and run.read_meta()["status"] == "finished"
    assert m["trl_logged"].all()


def test_rows_without_trls_log_are_marked(tmp_path: Path) -> None:
    monitor, trainer = user_script(tmp_path / "run", steps=2)

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("killed before TRL logged")

    monitor.on_log = crash  # type: ignore[method-assign]  # TRL's log never comes
    with pytest.raises(RuntimeError):
        trainer.train()
    monitor.finish("failed")
    run = RunDir.open(tmp_path / "run")
    m = run.read_metrics()
    assert run.read_meta()["status"] == "failed"
    assert list(m["step"]) == [1] and not m["trl_logged"].any()
    assert math.isnan(m["trl_reward"].iloc[0]) and not math.isnan(m["reward_mean"].iloc[0])
