"""Registries (engines, estimators, heating operators) feed the config; callbacks see the loop."""

from __future__ import annotations

import numpy as np
import pytest

from conceptweb.algorithms.callbacks import Callback
from conceptweb.algorithms.estimators import ESTIMATORS, GRPOEstimator
from conceptweb.algorithms.heating import HEATING_OPERATORS
from conceptweb.algorithms.trainer import Trainer
from conceptweb.config import HeatConfig
from conceptweb.errors import ConceptwebError
from conceptweb.experiments.ablation import DEFAULT_ARMS, parse_arm
from conceptweb.model.engines import ENGINES
from conceptweb.registry import Registry
from tests.conftest import small_config


@pytest.mark.parametrize(
    "key, registry",
    [
        ("model.engine", ENGINES),
        ("grpo.estimator", ESTIMATORS),
        ("anneal.heat.operator", HEATING_OPERATORS),
    ],
)
def test_config_choices_are_the_registry_keys(key, registry):
    for name in registry:
        small_config(**{key: name})
    with pytest.raises(ConceptwebError) as info:
        small_config(**{key: "nonesuch"})
    assert "nonesuch" in str(info.value) and ", ".join(registry) in str(info.value)


def test_operator_help_and_ablation_arms_come_from_the_registry():
    help_text = HeatConfig.model_fields["operator"].description
    assert all(f"{name}:" in help_text for name in HEATING_OPERATORS)
    ops = {parse_arm(a)[0] for a in DEFAULT_ARMS} - {"plain"}
    assert ops == set(HEATING_OPERATORS)
    with pytest.raises(ValueError, match="OPERATOR in sft"):
        parse_arm("nonesuch@auto")


def test_registry_refuses_a_name_twice_and_names_the_known_ones():
    reg = Registry[type]("widget")
    reg.register("a")(int)
    with pytest.raises(ValueError, match="twice"):
        reg.register("a")(float)
    with pytest.raises(ConceptwebError, match="unknown widget 'b'; known: a"):
        reg.get("b")


class ZeroAdvantage(GRPOEstimator):
    """Every walk's advantage is zero: RL updates leave the policy where it is."""

    def advantages(self, rollouts, cfg):
        return np.zeros(rollouts.lengths.size)


def test_an_estimator_registered_by_name_is_used_by_the_update():
    ESTIMATORS.register("zero-advantage-test")(ZeroAdvantage)
    try:
        t = Trainer(small_config(steps=5, **{"grpo.estimator": "zero-advantage-test"}))
        t.start()
        before = t.state.logits.copy()
        t.run()
        np.testing.assert_array_equal(t.state.logits, before)
        plain = Trainer(small_config(steps=5))
        plain.start()
        plain.run()
        assert not np.array_equal(plain.state.logits, before)
    finally:
        del ESTIMATORS._entries["zero-advantage-test"]


class Log(Callback):
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def on_train_begin(self, trainer, fresh):
        self.events.append(("begin", fresh, trainer.state.step))

    def on_step_end(self, trainer, row):
        self.events.append(("step", row["step"]))

    def on_heat_start(self, trainer, step, problems):
        self.events.append(("heat", step, problems.size))

    def on_train_end(self, trainer, result):
        self.events.append(("end", result.status, result.steps_done))


def test_callbacks_see_begin_steps_heating_and_end_in_order():
    log = Log()
    cfg = small_config(
        steps=6, **{"anneal.mode": "at", "anneal.at_step": 2, "anneal.heat.threshold": 1.0}
    )
    t = Trainer(cfg, callbacks=[log])
    t.start()
    t.run()
    kinds = [e[0] for e in log.events]
    assert log.events[0] == ("begin", True, 0)
    # the trigger fires inside step 2, before that step's callbacks
    assert kinds == ["begin", "step", "heat", *["step"] * 5, "end"]
    assert log.events[2][1] == 2 and log.events[2][2] > 0
    assert log.events[-1] == ("end", "finished", 6)


@pytest.mark.parametrize("name", ["conceptweb.registry", "conceptweb.algorithms.trainer"])
def test_docstring_examples_of_the_core_run(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
