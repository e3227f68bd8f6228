"""Training end to end on a tiny local model: records vs TRL's own log, heating, resume, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conceptweb.errors import ConceptwebError
from tests.llm.conftest import require_llm_packages, tiny_config, write_jsonl

pytestmark = pytest.mark.llm
require_llm_packages()

from conceptweb.llm.train import train_llm  # noqa: E402
from conceptweb.rundir import RunDir  # noqa: E402

CONTRACT_METRICS = [
    "step",
    "phase",
    "reward_mean",
    "len_correct_mean",
    "len_mean",
    "entropy_mean",
    "n_solved",
]
CONTRACT_PROBLEMS = [
    "step",
    "problem",
    "split",
    "accuracy",
    "len_correct_mean",
    "len_mean",
    "n_distinct_correct",
    "path_entropy",
]


def quiet(msg: str) -> None:
    pass


def trl_log(run: Path, trl_step: int) -> dict[int, dict]:
    state = json.loads(
        (run / "checkpoints" / f"checkpoint-{trl_step}" / "trainer_state.json").read_text()
    )
    return {h["step"]: h for h in state["log_history"] if "reward" in h}


def test_monitor_records_match_trl_log(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cfg = tiny_config(steps=6, save_steps=3)
    train_llm(cfg, out, echo=quiet)
    run = RunDir.open(out)
    assert run.kind == "llm" and run.read_meta()["status"] == "finished"
    m, p = run.read_metrics(), run.read_problems()
    assert set(CONTRACT_METRICS) <= set(m.columns) and set(CONTRACT_PROBLEMS) <= set(p.columns)
    assert list(m["step"]) == [1, 2, 3, 4, 5, 6] and set(m["phase"]) == {"rl"}
    logged = trl_log(out, 6)
    assert sorted(logged) == [1, 2, 3, 4, 5, 6]
    for _, row in m.iterrows():
        trl = logged[int(row["step"])]
        assert row["reward_mean"] == pytest.approx(trl["reward"], abs=1e-6)
        assert row["trl_reward"] == pytest.approx(trl["reward"], abs=1e-6)
        assert row["entropy_mean"] == pytest.approx(trl["entropy"], abs=1e-6)
        assert row["len_mean"] == pytest.approx(trl["completions/mean_length"], abs=1e-6)
    # every step: 8 distinct prompts x 4 completions, and the per-problem rows add up
    for step, g in p.groupby("step"):
        assert len(g) == 8 and set(g["n"]) == {4} and g["problem"].is_unique
        mean_acc = float((g["accuracy"] * g["n"]).sum() / g["n"].sum())
        assert mean_acc == pytest.approx(float(m.loc[m["step"] == step, "reward_mean"].iloc[0]))
        assert int((g["accuracy"] >= 0.5).sum()) == int(
            m.loc[m["step"] == step, "n_solved"].iloc[0]
        )
    assert (out / "final" / "config.json").is_file() and (out / "init" / "tokenizer.json").is_file()


def heat_data(tmp_path: Path) -> Path:
    rows = []
    for a in range(6):
        for b in range(6):
            row = {"problem": f"{a} + {b} =", "answer": str(a + b)}
            if (a + b) % 2 == 0:
                row["solution"] = str(a + b)  # only even sums have a reference solution
            rows.append(row)
    rows += [{"problem": "9 + 9 =", "answer": None}, "not json"]
    return write_jsonl(tmp_path / "arith.jsonl", rows)


def selected_independently(
    problems: pd.DataFrame, step: int, recent: int, threshold: float, has_solution: set[int]
) -> set[int]:
    rl = problems[(problems["phase"] == "rl") & (problems["step"] <= step)].sort_values("step")
    acc = rl.groupby("problem")["accuracy"].apply(lambda s: s.iloc[-recent:].mean())
    return {int(q) for q, a in acc.items() if a < threshold and q in has_solution}


def test_heating_happens_once_on_exactly_the_selected_problems(tmp_path: Path) -> None:
    data = heat_data(tmp_path)
    out = tmp_path / "run"
    cfg = tiny_config(
        steps=10,
        save_steps=20,
        data={"train": str(data)},
        anneal={
            "mode": "at",
            "at_step": 4,
            "heat": {
                "steps": 3,
                "threshold": 0.5,
                "recent": 2,
                "batch_size": 4,
                "learning_rate": 1e-2,
                "max_length": 16,
            },
        },
    )
    train_llm(cfg, out, echo=quiet)
    run = RunDir.open(out)
    meta = run.read_meta()
    assert meta["data"]["n_skipped"] == 2 and meta["data"]["n_problems"] == 36
    heats = meta["heats"]
    assert len(heats) == 1 and heats[0]["step"] == 4 and heats[0]["done"]
    m, p = run.read_metrics(), run.read_problems()
    assert list(m["step"]) == list(range(1, 11))
    assert list(m["phase"]) == ["rl"] * 4 + ["sft"] * 3 + ["rl"] * 3
    # the problems heated: hard (recent accuracy < 0.5), observed, and with a solution
    problems = json.loads((out / "heat" / "heat-1" / "sft_data.json").read_text())
    chosen = set(problems["problems"])
    has_solution = {i for i in range(36) if (i // 6 + i % 6) % 2 == 0}
    expected = selected_independently(p, 4, 2, 0.5, has_solution)
    assert chosen == expected and 0 < len(chosen) < 36
    assert set(run.read_table("heats")["problem"]) == chosen
    assert int(m.loc[m["step"] == 4, "n_heat_problems"].iloc[0]) == len(chosen)
    assert set(m.loc[m["phase"] == "sft", "n_heat_problems"]) == {len(chosen)}
    questions = {i: f"{i // 6} + {i % 6} =" for i in range(36)}
    assert sorted(r["prompt"] for r in problems["rows"]) == sorted(questions[q] for q in chosen)
    # the probe after heating measured exactly the heated problems, at the last heating step
    probe = p[p["phase"] == "sft"]
    assert set(probe["step"]) == {7} and set(probe["problem"]) == chosen
    # GRPO resumed from the heated weights with the pre-heating optimizer state
    pre = out / "checkpoints" / "checkpoint-4"
    hot = out / "heat" / "heat-1" / "checkpoint-4"
    assert (pre / "optimizer.pt").read_bytes() == (hot / "optimizer.pt").read_bytes()
    assert (pre / "model.safetensors").read_bytes() != (hot / "model.safetensors").read_bytes()
    assert (out / "checkpoints" / "checkpoint-7").is_dir()  # 10 steps = 7 GRPO + 3 SFT
    state = json.loads((out / "llm_state.json").read_text())
    assert state["offset"] == 3 and state["phase"] == "done"


def test_resume_after_heating_uses_the_heated_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cfg = tiny_config(
        steps=10,
        save_steps=3,
        anneal={
            "mode": "at",
            "at_step": 4,
            "heat": {
                "steps": 2,
                "threshold": 0.5,
                "probe": False,
                "batch_size": 4,
                "max_length": 16,
            },
        },
    )
    train_llm(cfg, out, echo=quiet)
    before = RunDir.open(out).read_metrics()
    # a crash after the heat, before GRPO's next checkpoint: only checkpoint-3 and -4 remain
    for trl_step in (6, 8):
        shutil.rmtree(out / "checkpoints" / f"checkpoint-{trl_step}")
    shutil.rmtree(out / "final")
    RunDir.open(out).update_meta(status="running")
    state = json.loads((out / "llm_state.json").read_text())
    (out / "llm_state.json").write_text(json.dumps({**state, "phase": "rl"}))
    train_llm(None, out, resume=True, echo=quiet)
    run = RunDir.open(out)
    after = run.read_metrics()
    assert list(after["step"]) == list(range(1, 11))
    assert list(after["phase"]) == ["rl"] * 4 + ["sft"] * 2 + ["rl"] * 4
    pd.testing.assert_series_equal(before["reward_mean"][:6], after["reward_mean"][:6])
    assert run.read_meta()["status"] == "finished" and len(run.read_meta()["heats"]) == 1
    assert (out / "checkpoints" / "checkpoint-8").is_dir()
    problems = run.read_problems()
    assert not problems.duplicated(["step", "problem", "phase"]).any()


def test_auto_mode_consults_the_detector_every_step(tmp_path: Path, monkeypatch) -> None:
    """The detector sees every GRPO step's history until it fires once; then heating runs.

    Whether the real detector fires on a tiny random model is chance, so its decision is
    forced at the 4th step (its evidence is still the real one); the test watches the
    orchestration: one consultation per step, one firing, the heat right after it.
    """
    from conceptweb.analysis.detector import FrustrationDetector

    seen: list[int] = []
    real_decide = FrustrationDetector.decide

    def decide(self, history):
        seen.append(len(history.steps))
        _, evidence = real_decide(self, history)
        return len(history.steps) == 4, evidence

    monkeypatch.setattr(FrustrationDetector, "decide", decide)
    out = tmp_path / "run"
    detector = {"window": 2, "min_steps": 3, "patience": 2, "min_forgetting": 0.0, "signal": "knee"}
    heat = {"steps": 2, "probe": False, "threshold": 1.0}  # every unsolved problem is heated
    cfg = tiny_config(
        steps=8, save_steps=8, anneal={"mode": "auto", "detector": detector, "heat": heat}
    )
    train_llm(cfg, out, echo=quiet)
    run = RunDir.open(out)
    m = run.read_metrics()
    assert seen == [1, 2, 3, 4]  # every step, each with one more step of history
    consulted = m[m["det_fire"].notna()]
    assert list(consulted["step"]) == [1, 2, 3, 4]
    assert list(consulted["det_fire"].astype(bool)) == [False, False, False, True]
    assert {"det_F", "det_slope"} <= set(m.columns)
    assert list(m["phase"]) == ["rl"] * 4 + ["sft"] * 2 + ["rl"] * 2
    assert len(run.read_meta()["heats"]) == 1


@pytest.mark.parametrize(
    "over, match",
    [
        ({"data": {"train": "no-such-dataset"}}, "unknown dataset 'no-such-dataset'"),
        ({"model": {"scratch": None, "name_or_path": "./no/such/model"}}, "model path not found"),
        ({"data": {"train": "no_answers.jsonl"}}, "no answer field 'answer'"),
        ({"grpo": {"per_device_batch_size": 5}}, "must be a multiple of"),
        (
            {"anneal": {"mode": "at", "at_step": 3}, "data": {"train": "no_solutions.jsonl"}},
            "heating needs reference solutions",
        ),
    ],
)
def test_bad_config_fails_before_training(
    tmp_path: Path, monkeypatch, over: dict, match: str
) -> None:
    monkeypatch.chdir(tmp_path)
    write_jsonl(tmp_path / "no_answers.jsonl", [{"problem": "1 + 1 =", "result": "2"}])
    write_jsonl(
        tmp_path / "no_solutions.jsonl",
        [{"problem": f"{i} + 1 =", "answer": str(i + 1)} for i in range(10)],
    )
    with pytest.raises(ConceptwebError, match=match):
        train_llm(tiny_config(**over), tmp_path / "out", echo=quiet)
    assert not (tmp_path / "out").exists()  # nothing trained, no run directory made


def test_model_loads_by_local_path(tmp_path: Path) -> None:
    first = tmp_path / "a"
    train_llm(tiny_config(steps=2, save_steps=2), first, echo=quiet)
    cfg = tiny_config(
        steps=2, save_steps=2, model={"scratch": None, "name_or_path": str(first / "final")}
    )
    train_llm(cfg, tmp_path / "b", echo=quiet)
    assert np.isfinite(RunDir.open(tmp_path / "b").read_metrics()["reward_mean"]).all()


def test_kl_reference_is_the_base_model_after_heating_and_resume(
    tmp_path: Path, monkeypatch
) -> None:
    """With beta > 0, every GRPO phase's reference weights equal the base model's: before
    heating, after it (the policy is then a heated checkpoint), and after --resume; a scratch
    model works (its base is the model as built at step 0)."""
    import torch
    import trl
    from transformers import AutoModelForCausalLM

    refs: list[dict[str, torch.Tensor]] = []

    class Recording(trl.GRPOTrainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            refs.append({k: v.detach().clone() for k, v in self.ref_model.state_dict().items()})

    monkeypatch.setattr(trl, "GRPOTrainer", Recording)
    out = tmp_path / "run"
    heat = {"steps": 2, "threshold": 0.5, "probe": False, "batch_size": 4, "max_length": 16}
    cfg = tiny_config(
        steps=8,
        save_steps=2,
        grpo={"beta": 0.1, "learning_rate": 3e-2},
        anneal={"mode": "at", "at_step": 2, "heat": heat},
    )
    train_llm(cfg, out, echo=quiet)
    shutil.rmtree(out / "checkpoints" / "checkpoint-6")  # resume from GRPO's checkpoint-4
    RunDir.open(out).update_meta(status="running")
    state = json.loads((out / "llm_state.json").read_text())
    (out / "llm_state.json").write_text(json.dumps({**state, "phase": "rl"}))
    train_llm(None, out, resume=True, echo=quiet)
    base = AutoModelForCausalLM.from_pretrained(out / "init").state_dict()
    final = AutoModelForCausalLM.from_pretrained(out / "final").state_dict()
    assert len(refs) == 3  # before heating, after it, after the resume
    for ref in refs:
        assert ref.keys() == base.keys()
        for k in base:
            torch.testing.assert_close(ref[k], base[k], rtol=0, atol=0)
    assert any(not torch.equal(final[k], base[k]) for k in base)  # the policy did move


def test_learning_rate_schedule_is_continuous_across_heating(tmp_path: Path) -> None:
    """A linear decay over the run: GRPO's learning rate falls by the same amount per GRPO step
    before and after the heating (a schedule rebuilt over the shorter post-heat budget would
    fall faster after it)."""
    out = tmp_path / "run"
    heat = {"steps": 2, "threshold": 0.5, "probe": False, "batch_size": 4, "max_length": 16}
    cfg = tiny_config(
        steps=10,
        save_steps=20,
        grpo={"lr_scheduler_type": "linear", "learning_rate": 1e-3},
        anneal={"mode": "at", "at_step": 4, "heat": heat},
    )
    train_llm(cfg, out, echo=quiet)
    m = RunDir.open(out).read_metrics()
    assert list(m["phase"]) == ["rl"] * 4 + ["sft"] * 2 + ["rl"] * 4
    lr = m.loc[m["phase"] == "rl", "learning_rate"].to_numpy()
    steps = np.diff(lr)
    np.testing.assert_allclose(steps, steps[0], rtol=1e-6)  # one slope through the heat
    assert steps[0] < 0
