"""Generation at scale: KV-cache batch sizing, backend selection, work split across processes."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tests.llm.conftest import (
    launch_failure,
    require_llm_packages,
    require_two_gloo_processes,
    torchrun_two,
)

pytestmark = pytest.mark.llm
require_llm_packages()

from conceptweb.errors import ConceptwebError  # noqa: E402
from conceptweb.llm import generate as gen  # noqa: E402
from conceptweb.llm.generate import Sample  # noqa: E402


def test_kv_cache_estimate_counts_layers_kv_heads_head_dim_and_dtype() -> None:
    # R1-Distill-Qwen-1.5B: 28 layers, 12 heads of 128, 2 KV heads (GQA), bf16
    qwen = SimpleNamespace(
        num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2, hidden_size=1536
    )
    assert gen.kv_bytes_per_token(qwen, 2) == 2 * 28 * 2 * 128 * 2  # 28 KiB per token
    mha = SimpleNamespace(num_hidden_layers=2, num_attention_heads=4, hidden_size=64)
    assert gen.kv_bytes_per_token(mha, 4) == 2 * 2 * 4 * 16 * 4
    # the case: 64 prompts x 16 samples x 8k tokens need ~240 GB of cache; with 40 GB
    # of an 80 GB GPU for the cache, 10 prompts of 16 x 8.4k tokens (3.85 GB each) fit
    per_token = gen.kv_bytes_per_token(qwen, 2)
    assert 64 * 16 * 8192 * per_token == pytest.approx(240e9, rel=0.03)
    assert gen.memory_batch_size(per_token, 8192 + 200, 16, 80e9, 64) == 10
    assert gen.memory_batch_size(per_token, 8192 + 200, 16, 1e6, 64) == 1  # never below 1
    assert gen.memory_batch_size(per_token, 100, 16, 1e15, 64) == 64  # never above the cap


def test_batches_shrink_when_memory_is_short() -> None:
    from conceptweb.llm.config import ScratchModelConfig
    from conceptweb.llm.models import build_scratch_model, build_wordlevel_tokenizer

    tok = build_wordlevel_tokenizer(["1 + 2 = 3", "4 + 5 = 9"])
    model = build_scratch_model(
        ScratchModelConfig(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32), tok
    )
    prompts = ["1 + 2 =", "4 + 5 =", "1 + 5 =", "4 + 2 ="]
    kw = {"temperature": 1.0, "top_p": 1.0, "max_new_tokens": 3, "seed": 0}
    big = gen.HFGenerator(model, tok, batch_size=4, memory=1e12)
    out_big = big.generate(prompts, 2, **kw)
    assert big.last_batch_size == 4
    per_prompt = 2 * (4 + 3) * gen.kv_bytes_per_token(model.config, 4)  # fp32 cache
    small = gen.HFGenerator(model, tok, batch_size=4, memory=per_prompt / gen.MEMORY_FRACTION)
    out_small = small.generate(prompts, 2, **kw)
    assert small.last_batch_size == 1
    assert len(out_small) == len(out_big) == 4 and all(len(g) == 2 for g in out_small)
    assert all(1 <= s.n_tokens <= 3 for g in out_small for s in g)
    assert all(
        s.truncated == (s.n_tokens == 3 and tok.eos_token_id is not None) or s.n_tokens == 3
        for g in out_small
        for s in g
    )


def test_backend_selection() -> None:
    assert gen.select_backend("auto", vllm_available=True, gpu=True) == "vllm"
    assert gen.select_backend("auto", vllm_available=False, gpu=True) == "hf"
    assert gen.select_backend("auto", vllm_available=True, gpu=False) == "hf"
    assert gen.select_backend("hf", vllm_available=True, gpu=True) == "hf"
    with pytest.raises(ConceptwebError, match="not installed"):
        gen.select_backend("vllm", vllm_available=False, gpu=True)
    with pytest.raises(ConceptwebError, match="GPU"):
        gen.select_backend("vllm", vllm_available=True, gpu=False)
    with pytest.raises(ConceptwebError, match="unknown"):
        gen.select_backend("tgi", vllm_available=True, gpu=True)


def test_shards_cover_every_prompt_once_with_equal_padded_sizes() -> None:
    for n in (0, 1, 5, 8):
        seen = []
        sizes = set()
        for rank in range(3):
            idx, real = gen.padded_shard(n, rank, 3)
            sizes.add(len(idx))
            seen += idx[:real]
        assert sorted(seen) == list(range(n)) and len(sizes) == 1


class Recorder:
    """A fake generator that says which prompts it was asked for."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def generate(self, prompts, k, **kw):
        self.calls.append(list(prompts))
        return [[Sample(f"{p}|{kw['seed']}", 1)] * k for p in prompts]


def test_each_rank_generates_only_its_shard_and_all_get_everything(monkeypatch) -> None:
    import accelerate.utils

    prompts = [f"p{i}" for i in range(5)]
    shards: dict[int, list] = {}
    for rank in (0, 1):  # what each of 2 processes generates and contributes
        monkeypatch.setattr(gen, "_rank_world", lambda r=rank: (r, 2))
        monkeypatch.setattr(
            accelerate.utils, "gather_object", lambda x, r=rank: shards.setdefault(r, x)
        )
        g = Recorder()
        gen.sample_sharded(g, prompts, 2, temperature=1.0, top_p=1.0, max_new_tokens=1, seed=0)
        assert len(g.calls) == 1 and len(g.calls[0]) == 3  # 3 of 5 (rank 1 padded)
    assert [i for i, _ in shards[0]] == [0, 2, 4] and [i for i, _ in shards[1]] == [1, 3]
    both = shards[0] + shards[1]
    monkeypatch.setattr(accelerate.utils, "gather_object", lambda x: both)
    out = gen.sample_sharded(
        Recorder(), prompts, 2, temperature=1.0, top_p=1.0, max_new_tokens=1, seed=0
    )
    assert [g[0].text.split("|")[0] for g in out] == prompts
    monkeypatch.setattr(gen, "_rank_world", lambda: (0, 1))
    single = Recorder()
    gen.sample_sharded(single, prompts, 2, temperature=1.0, top_p=1.0, max_new_tokens=1, seed=0)
    assert single.calls == [prompts]


def test_sampling_leaves_the_callers_random_state_alone() -> None:
    """A sentinel evaluation inside training must not reseed training's own sampling."""
    import torch

    from conceptweb.llm.config import ScratchModelConfig
    from conceptweb.llm.models import build_scratch_model, build_wordlevel_tokenizer

    tok = build_wordlevel_tokenizer(["1 + 2 = 3"])
    model = build_scratch_model(ScratchModelConfig(hidden_size=16, num_layers=1, num_heads=2), tok)
    g = gen.HFGenerator(model, tok, batch_size=2)
    kw = {"temperature": 1.0, "top_p": 1.0, "max_new_tokens": 2}
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    a = g.generate(["1 + 2 ="], 4, seed=1, **kw)
    assert torch.equal(torch.rand(3), expected)
    assert a == g.generate(["1 + 2 ="], 4, seed=1, **kw)  # and the seed fixes the samples


SHARD_SCRIPT = """
import json, sys
from conceptweb.llm import generate as gen
from conceptweb.llm.runtime import distributed_state

class Fake:
    calls = []
    def generate(self, prompts, k, **kw):
        self.calls.append(list(prompts))
        return [[gen.Sample(p + "|" + str(kw["seed"]), 1)] * k for p in prompts]

state = distributed_state()
g = Fake()
out = gen.sample_sharded(g, [f"p{i}" for i in range(5)], 2, temperature=1.0, top_p=1.0,
                         max_new_tokens=1, seed=0)
rank = state.process_index
json.dump({"calls": g.calls, "out": [[s.text for s in grp] for grp in out]},
          open(sys.argv[1] + f"/rank{rank}.json", "w"))
"""


def test_two_gloo_processes_split_the_prompts_and_gather_them(tmp_path) -> None:
    """torchrun with 2 CPU processes: each generates only its shard, both get every result."""
    import json

    require_two_gloo_processes(tmp_path)
    script = tmp_path / "shard.py"
    script.write_text(SHARD_SCRIPT)
    res = torchrun_two([str(script), str(tmp_path)])
    assert res.returncode == 0, launch_failure(res)
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["calls"] == [["p0", "p2", "p4"]] and r1["calls"] == [["p1", "p3", "p1"]]  # padded
    assert r0["out"] == r1["out"]
    assert [grp[0].split("|")[0] for grp in r0["out"]] == [f"p{i}" for i in range(5)]
    assert {grp[0].split("|")[1] for grp in r0["out"]} == {"0", "1000003"}  # seeds per rank
