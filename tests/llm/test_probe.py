"""The heating probe: sampled from the heated weights through the GRPO phase's generator
(TRL's vLLM engine or HF generate), split across processes, recorded once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.llm.conftest import require_llm_packages, tiny_config

pytestmark = pytest.mark.llm
require_llm_packages()

from conceptweb.errors import ConceptwebError  # noqa: E402
from conceptweb.llm import generate as gen  # noqa: E402
from conceptweb.llm import train as train_mod  # noqa: E402
from conceptweb.llm.generate import HFGenerator, Sample, TRLVLLMGenerator  # noqa: E402
from conceptweb.llm.heat import probe  # noqa: E402
from conceptweb.llm.rewards import MathTask  # noqa: E402
from conceptweb.llm.sentinel import training_generator  # noqa: E402
from conceptweb.rundir import RunDir  # noqa: E402

HEAT = {"steps": 2, "threshold": 0.5, "recent": 2, "batch_size": 4, "max_length": 16}


def heat_config(**over: Any) -> Any:
    return tiny_config(
        steps=7, save_steps=20, anneal={"mode": "at", "at_step": 3, "heat": HEAT}, **over
    )


class FakeEngine:
    """TRL's VLLMGeneration as the probe sees it: sync_weights copies the policy's weights
    (as TRL loads them into vLLM), generate answers with the correct sum for even problems."""

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model, self.tok = model, tokenizer
        self.synced: dict[str, Any] | None = None
        self.calls: list[tuple[list[str], int]] = []

    def sync_weights(self) -> None:
        self.synced = {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def generate(self, prompts: list[list[int]], images: Any, num_generations: int) -> tuple:
        assert self.synced is not None, "generated before the weights were loaded"
        texts = [self.tok.decode(p, skip_special_tokens=True) for p in prompts]
        self.calls.append((texts, num_generations))
        out = []
        for t in texts:
            a, b = (int(x) for x in t.replace("=", "").split("+"))
            answer = str(a + b) if (a + b) % 2 == 0 else "0"
            ids = self.tok(text=answer, add_special_tokens=False)["input_ids"]
            out.append([*ids, self.tok.eos_token_id])
        return None, out, None, None


def test_probe_samples_the_heated_weights_through_trls_vllm_engine(tmp_path, monkeypatch) -> None:
    """With TRL's engine (grpo.use_vllm; a fake engine here), the probe loads the weights GRPO
    resumes with into it, samples every heated problem there once, and records what it sampled."""
    from safetensors.torch import load_file

    seen: dict[str, Any] = {}
    real = train_mod.training_generator

    def with_engine(cfg, model, tokenizer, trainer, backend, batch_size, what):
        seen.update(backend=backend, what=what, trainer=type(trainer).__name__)
        trainer.vllm_generation = seen["engine"] = FakeEngine(model, tokenizer)
        return real(cfg, model, tokenizer, trainer, backend, batch_size, what)

    monkeypatch.setattr(train_mod, "training_generator", with_engine)
    out = tmp_path / "run"
    train_mod.train_llm(heat_config(), out, echo=lambda m: None)
    assert seen["backend"] == "auto" and seen["trainer"] == "GRPOTrainer"
    engine = seen["engine"]
    heated = load_file(out / "heat" / "heat-1" / "checkpoint-3" / "model.safetensors")
    assert set(heated) <= set(engine.synced)
    assert all((engine.synced[k] == heated[k]).all() for k in heated)  # the heated weights
    run = RunDir.open(out)
    p, m = run.read_problems(), run.read_metrics().set_index("step")
    probed = p[p["phase"] == "sft"].set_index("problem")
    import json

    chosen = json.loads((out / "heat" / "heat-1" / "sft_data.json").read_text())["problems"]
    assert len(engine.calls) == 1 and engine.calls[0][1] == 4  # one call, num_generations
    assert len(engine.calls[0][0]) == 4 * len(chosen)
    assert sorted(probed.index) == sorted(chosen) and set(probed["step"]) == {5}
    assert set(probed["n"]) == {4}
    even = {q for q in chosen if sum(int(x) for x in _question(q).split(" + ")) % 2 == 0}
    assert {q for q in chosen if probed.loc[q, "accuracy"] == 1.0} == even
    assert (probed.loc[[q for q in chosen if q not in even], "accuracy"] == 0).all()
    assert m.loc[5, "probe_accuracy"] == pytest.approx(probed["accuracy"].mean())
    assert (probed["truncated_rate"] == 0).all()  # every fake completion ended with EOS
    heat = json.loads((out / "llm_state.json").read_text())["heats"][0]
    assert heat["probe_backend"] == "vllm" and heat["probe_pending"] is False
    assert run.read_meta()["heats"][0]["probe_backend"] == "vllm"


def _question(q: int) -> str:
    from conceptweb.llm.data import load_problems

    return load_problems("synthetic-arith").problems[q].question.removesuffix(" =")


def test_hf_probe_equals_sampling_the_heated_checkpoint(tmp_path, monkeypatch) -> None:
    """Without vLLM the probe samples with HF generate: its records equal k samples of each
    heated problem drawn from the saved heated checkpoint with the probe's seed and batches.
    A run killed between heating and the probe catches the probe up on --resume (once)."""
    from conceptweb.llm.data import load_problems
    from conceptweb.llm.generate import sample_scored
    from conceptweb.llm.heat import probe_batch_size
    from conceptweb.llm.models import load_pretrained

    cfg = heat_config()
    out = tmp_path / "run"

    def killed(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("killed before the probe")

    monkeypatch.setattr(train_mod, "probe", killed)
    with pytest.raises(RuntimeError, match="killed"):
        train_mod.train_llm(cfg, out, echo=lambda m: None)
    assert RunDir.open(out).read_problems().query("phase == 'sft'").empty
    monkeypatch.undo()
    train_mod.train_llm(None, out, resume=True, echo=lambda m: None)
    import json

    state = json.loads((out / "llm_state.json").read_text())
    heat = state["heats"][0]
    assert heat["probe_pending"] is False and heat["probe_backend"] == "hf"
    model, tok = load_pretrained(cfg.model, str(out / heat["checkpoint"]))
    problems = load_problems("synthetic-arith").problems
    chosen = [problems[q] for q in heat["problems"]]
    groups = sample_scored(
        HFGenerator(model, tok, batch_size=probe_batch_size(cfg)),
        chosen,
        MathTask(),
        cfg.data,
        cfg.grpo.num_generations,
        temperature=cfg.grpo.temperature,
        top_p=cfg.grpo.top_p,
        max_new_tokens=cfg.grpo.max_completion_length,
        seed=cfg.seed,
    )
    p = RunDir.open(out).read_problems()
    probed = p[p["phase"] == "sft"].set_index("problem")
    assert len(probed) == len(chosen) and probed.index.is_unique
    for prob, group in zip(chosen, groups, strict=True):
        row = probed.loc[prob.id]
        assert row["n"] == len(group) == cfg.grpo.num_generations
        assert row["n_correct"] == sum(s.correct for s in group)
        assert row["len_mean"] == pytest.approx(sum(s.length for s in group) / len(group))
        assert row["truncated_rate"] == pytest.approx(sum(s.truncated for s in group) / len(group))


class ShardRecorder:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def generate(self, prompts, k, **kw):
        self.calls.append(list(prompts))
        return [[Sample(p.split(" +")[0], 1)] * k for p in prompts]  # answers a, right if b=0


def test_probe_on_two_ranks_samples_shards_gathers_all_and_writes_once(
    tmp_path, monkeypatch
) -> None:
    """A fake 2-process world: each rank samples only its shard of the heated problems, both
    get every result, and only the main process writes the probe's rows."""
    import accelerate.utils

    from conceptweb.llm.data import load_problems
    from conceptweb.llm.monitor import RecordBook
    from conceptweb.llm.train import Orchestrator, RunState, Setup

    cfg = heat_config()
    problems = load_problems("synthetic-arith").problems
    heat = {"problems": [0, 1, 2, 10, 20], "last_sft_step": 5, "probe_pending": True}
    chosen = [problems[q] for q in heat["problems"]]
    shards: dict[int, list] = {}
    for rank in (0, 1):  # what each process samples and contributes to the gather
        monkeypatch.setattr(gen, "_rank_world", lambda r=rank: (r, 2))
        monkeypatch.setattr(
            accelerate.utils, "gather_object", lambda x, r=rank: shards.setdefault(r, x)
        )
        g = ShardRecorder()
        probe(g, chosen, MathTask(), cfg, 0)
        assert len(g.calls) == 1 and len(g.calls[0]) == 3  # 3 of 5 (rank 1 padded)
    assert [i for i, _ in shards[0]] == [0, 2, 4] and [i for i, _ in shards[1]] == [1, 3]
    both = shards[0] + shards[1]
    monkeypatch.setattr(accelerate.utils, "gather_object", lambda x: both)
    run = RunDir.create(tmp_path / "run", {"note": "probe test"}, kind="llm")
    for rank in (0, 1):  # the orchestrator's probe on each process, with the full gather
        monkeypatch.setattr(gen, "_rank_world", lambda r=rank: (r, 2))
        monkeypatch.setattr(train_mod, "is_main_process", lambda r=rank: r == 0)
        orch = object.__new__(Orchestrator)
        orch.cfg, orch.run_dir, orch.echo = cfg, run, lambda m: None
        orch.setup = Setup(cfg, MathTask(), _Loaded(problems), 1)
        orch.state = RunState(phase="rl", offset=2, heats=[dict(heat)])
        book = RecordBook(len(problems))
        book.add_sft_step(5, 5)
        g = ShardRecorder()
        orch._probe(orch.state.heats[0], book, g)
        assert len(g.calls[0]) == 3  # still only its shard
        assert book.row(5)["probe_accuracy"] == pytest.approx(0.6)  # b = 0: 0, 10, 20
        assert book.pending_problems().empty and orch.state.heats[0]["probe_pending"] is False
    written = run.read_problems()
    assert sorted(written["problem"]) == heat["problems"]  # every result, written once
    assert set(written["phase"]) == {"sft"} and set(written["step"]) == {5}
    assert written.set_index("problem").loc[0, "accuracy"] == 1.0


class _Loaded:
    def __init__(self, problems: list) -> None:
        self.problems = problems


def test_training_generator_picks_the_configured_backend() -> None:
    from conceptweb.llm.config import ScratchModelConfig
    from conceptweb.llm.models import build_scratch_model, build_wordlevel_tokenizer

    cfg = heat_config()
    tok = build_wordlevel_tokenizer(["1 + 2 = 3"])
    model = build_scratch_model(ScratchModelConfig(hidden_size=16, num_layers=1, num_heads=2), tok)
    with_engine = type("T", (), {"vllm_generation": FakeEngine(model, tok)})()
    without = type("T", (), {})()
    assert isinstance(training_generator(cfg, model, tok, with_engine, "auto", 4), TRLVLLMGenerator)
    assert isinstance(training_generator(cfg, model, tok, with_engine, "vllm", 4), TRLVLLMGenerator)
    hf = training_generator(cfg, model, tok, with_engine, "hf", 4)
    assert isinstance(hf, HFGenerator) and hf.batch_size == 4 and hf.model is model
    assert isinstance(training_generator(cfg, model, tok, without, "auto", 4), HFGenerator)
    with pytest.raises(ConceptwebError, match="probe_backend vllm needs grpo.use_vllm"):
        training_generator(cfg, model, tok, without, "vllm", 4, "anneal.heat.probe_backend")


def test_probe_backend_vllm_without_trls_engine_is_refused_before_the_run(tmp_path: Path) -> None:
    cfg = tiny_config(
        steps=7,
        anneal={"mode": "at", "at_step": 3, "heat": {**HEAT, "probe_backend": "vllm"}},
    )
    with pytest.raises(ConceptwebError, match="probe_backend vllm .* grpo.use_vllm"):
        train_mod.train_llm(cfg, tmp_path / "run", echo=lambda m: None)
    assert not (tmp_path / "run").exists()
    cfg = tiny_config(sentinel={"problems": 4, "backend": "vllm"})
    with pytest.raises(ConceptwebError, match="sentinel.backend vllm"):
        train_mod.train_llm(cfg, tmp_path / "run", echo=lambda m: None)
    assert not (tmp_path / "run").exists()
