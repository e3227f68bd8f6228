"""LLM run configs: YAML files validate, --set overrides, clear errors on bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from conceptweb.errors import ConceptwebError
from conceptweb.llm.config import resolve_llm_config, validate_llm_config
from tests.llm.conftest import tiny_config_dict

pytestmark = pytest.mark.llm
CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize(
    "name",
    [
        "tiny-cpu.yaml",
        "deepscaler-1.5b.yaml",
        "deepscaler-1.5b-16k.yaml",
        "deepscaler-1.5b-24k.yaml",
    ],
)
def test_shipped_configs_validate(name: str) -> None:
    cfg = resolve_llm_config(CONFIGS / name)
    assert cfg.steps > 0
    assert (cfg.model.scratch is not None) == (name == "tiny-cpu.yaml")


def test_deepscaler_config_makes_two_updates_per_rollout_of_128_prompts() -> None:
    processes = 8  # the launch line in the file
    for name, context in [("", 8192), ("-16k", 16384), ("-24k", 24576)]:
        g = resolve_llm_config(CONFIGS / f"deepscaler-1.5b{name}.yaml").grpo
        micro = g.per_device_batch_size * processes  # completions per micro-batch
        accum = g.prompts_per_step * g.num_generations // micro  # micro-batches per update
        per_rollout = g.extra["steps_per_generation"] * micro // g.num_generations
        assert per_rollout == 128 and g.extra["steps_per_generation"] // accum == 2
        assert g.max_completion_length == context and g.beta == 0.001


def test_set_overrides_and_yaml_off() -> None:
    cfg = resolve_llm_config(
        CONFIGS / "tiny-cpu.yaml", ["grpo.learning_rate=1e-4", "anneal.mode=off", "steps=7"]
    )
    assert cfg.grpo.learning_rate == 1e-4
    assert cfg.anneal.mode == "off"  # YAML reads a bare `off` as false
    assert cfg.steps == 7


def test_model_needs_exactly_one_source() -> None:
    data = tiny_config_dict(model={"name_or_path": "some/model"})
    with pytest.raises(ConceptwebError, match="exactly one of model.name_or_path"):
        validate_llm_config(data)


@pytest.mark.parametrize(
    "over, match",
    [
        ({"anneal": {"mode": "at"}}, "needs anneal.at_step"),
        ({"anneal": {"mode": "at", "at_step": 50}}, "must be before steps"),
        ({"grpo": {"num_generations": 1}}, "grpo.num_generations"),
        ({"task": {"kind": "conet_walk"}}, "needs task.graph"),
        ({"grpo": {"bogus": 1}}, "grpo.bogus"),
    ],
)
def test_bad_values_name_the_field(over: dict, match: str) -> None:
    with pytest.raises(ConceptwebError, match=match):
        validate_llm_config(tiny_config_dict(**over))
