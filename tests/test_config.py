"""Configs: presets, files, --set overrides and clear errors on bad input."""

from __future__ import annotations

import pytest

from conceptweb.config import PRESETS, RunConfig, config_to_dict, parse_set, resolve_config
from conceptweb.errors import ConceptwebError


def test_presets_resolve_and_record_their_name():
    for name in PRESETS:
        cfg = resolve_config(name)
        assert cfg.preset == name
    assert resolve_config("paper").model.K == 40
    assert resolve_config("paper").model.N == 800
    assert resolve_config("sparse").model.K == 8
    assert resolve_config("frustrated").model.K == 4
    assert resolve_config("sparse").steps >= 600


def test_defaults_match_spec():
    cfg = RunConfig()
    assert (cfg.grpo.G, cfg.model.L, cfg.grpo.lr, cfg.problems.Q) == (16, 100, 0.1, 128)
    assert (cfg.eval.every, cfg.eval.G) == (10, 64)


def test_set_overrides_parse_yaml_values():
    assert parse_set("model.K=16") == {"model": {"K": 16}}
    assert parse_set("grpo.lr=0.05") == {"grpo": {"lr": 0.05}}
    assert parse_set("grpo.length_norm=false") == {"grpo": {"length_norm": False}}
    cfg = resolve_config("sparse", sets=["model.K=16", "grpo.lr=0.05"])
    assert cfg.model.K == 16 and cfg.grpo.lr == 0.05


@pytest.mark.parametrize(
    "raw",
    ["0", "-0", "7", "-12", "1000000", "0.5", "-0.25", "3.0", "10.125", "true", "false"]
    + ["010", "1_000", "1e3", "1.0e+3", "+5", "0x10", "1:30", ".5", "5.", "True", "yes", "null"]
    + [" 5", "5 ", "numba", "", "[1, 2]", "0.1.2", "-", "1-2"],
)
def test_set_values_read_as_yaml_reads_them(raw):
    """Plain numbers and true/false are read without yaml: the same value and type as yaml's."""
    import yaml

    want = yaml.safe_load(raw) if raw.strip() else ""
    got = parse_set(f"a.b={raw}")["a"]["b"]
    assert (got, type(got)) == (want, type(want))


def test_file_then_set_precedence(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("preset: sparse\nseed: 3\nmodel:\n  K: 10\n")
    cfg = resolve_config(config_file=f, sets=["model.K=12"])
    assert (cfg.preset, cfg.seed, cfg.model.K, cfg.model.N) == ("sparse", 3, 12, 800)
    t = tmp_path / "c.toml"
    t.write_text("seed = 5\n[model]\nK = 6\n")
    assert resolve_config(config_file=t).model.K == 6


def test_yaml_off_means_off(tmp_path):
    assert resolve_config("sparse", sets=["anneal.mode=off"]).anneal.mode == "off"
    f = tmp_path / "c.yaml"
    f.write_text("anneal:\n  mode: off\n")
    assert resolve_config(config_file=f).anneal.mode == "off"


def test_resolved_config_round_trips():
    cfg = resolve_config("paper", sets=["seed=7"])
    assert RunConfig.model_validate(config_to_dict(cfg)) == cfg


@pytest.mark.parametrize(
    "sets, message",
    [
        (["model.N=-3"], "model.N"),
        (["model.K=800"], "smaller than N"),
        (["model.N=801", "model.K=3"], "must be even"),
        (["model.bogus=1"], "bogus"),
        (["grpo.G=1"], "grpo.G"),
        (["problems.Q=1000000"], "too many problems"),
        (["sft.problems=old:3"], "new:N"),
        (["anneal.mode=at"], "at_step"),
    ],
)
def test_bad_values_give_clear_errors(sets, message):
    with pytest.raises(ConceptwebError, match=message):
        resolve_config("sparse", sets=sets)


def test_bad_files_and_presets(tmp_path):
    with pytest.raises(ConceptwebError, match="unknown preset"):
        resolve_config("nope")
    with pytest.raises(ConceptwebError, match="not found"):
        resolve_config(config_file=tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [1, 2\n")
    with pytest.raises(ConceptwebError, match="cannot parse"):
        resolve_config(config_file=bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(ConceptwebError, match="mapping"):
        resolve_config(config_file=lst)
    with pytest.raises(ConceptwebError, match="KEY=VALUE"):
        resolve_config(sets=["model.K"])
