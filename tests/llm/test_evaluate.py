"""Evaluation: best@k and mean@k from k samples per problem, ID sample, JSON and table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.llm.conftest import require_llm_packages, tiny_config, write_jsonl

pytestmark = pytest.mark.llm
require_llm_packages()

from conceptweb.llm import evaluate as ev  # noqa: E402
from conceptweb.llm import generate  # noqa: E402
from conceptweb.llm.data import load_problems  # noqa: E402
from conceptweb.llm.generate import Sample  # noqa: E402
from conceptweb.llm.rewards import MathTask  # noqa: E402
from conceptweb.llm.train import train_llm  # noqa: E402


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("eval") / "run"
    train_llm(tiny_config(steps=2, save_steps=2), out, echo=lambda m: None)
    return out


def test_best_and_mean_at_k_count_correct_samples(
    trained: Path, tmp_path: Path, monkeypatch
) -> None:
    # a fake sampler: problem i gets i correct answers out of k = 4
    def fake_sample(model, tok, prompts, k, **kw):
        out = []
        for i, _ in enumerate(prompts):
            out.append([Sample("7" if j < i else "wrong", 2) for j in range(k)])
        return out

    monkeypatch.setattr(
        generate.HFGenerator,
        "generate",
        lambda self, prompts, k, **kw: fake_sample(0, 0, prompts, k),
    )
    path = write_jsonl(
        tmp_path / "b.jsonl", [{"problem": f"q{i}", "answer": "7"} for i in range(4)]
    )
    cfg = tiny_config(eval={"k": 4, "id_problems": 3, "datasets": [str(path)]})
    data = load_problems("synthetic-arith")
    results = ev.evaluate_model(trained / "final", cfg, data, MathTask(), echo=lambda m: None)
    names = [r.dataset for r in results]
    assert names == ["train", str(path)]
    ood = results[1]
    assert ood.k == 4 and ood.n_problems == 4
    assert ood.mean_at_k == pytest.approx((0 + 1 + 2 + 3) / 16)
    assert ood.best_at_k == pytest.approx(3 / 4)
    assert [p["n_correct"] for p in ood.per_problem] == [0, 1, 2, 3]
    assert results[0].n_problems == 3 and results[0].split == "id"
    js, md = ev.write_results(results, tmp_path / "res")
    loaded = json.loads(js.read_text())  # valid JSON: no NaN
    assert loaded["results"][1]["best_at_k"] == 0.75
    assert "| " + str(path) + " | ood | 4 | 4 | 0.375 | 0.750 |" in md.read_text()


def test_id_sample_is_fixed() -> None:
    data = load_problems("synthetic-arith")
    a = [p.id for p in ev.id_sample(data, 10, seed=1)]
    assert a == [p.id for p in ev.id_sample(data, 10, seed=1)] and len(set(a)) == 10


def test_real_sampling_runs_on_the_trained_model(trained: Path) -> None:
    cfg = tiny_config(eval={"k": 3, "id_problems": 5, "datasets": []})
    results = ev.evaluate_model(
        trained / "final", cfg, load_problems("synthetic-arith"), MathTask(), echo=lambda m: None
    )
    (r,) = results
    assert r.n_problems == 5 and 0 <= r.mean_at_k <= r.best_at_k <= 1
    assert 1 <= r.len_mean <= 2  # max_new_tokens = 2
