"""The examples in the analysis modules' docstrings run and give what they show."""

from __future__ import annotations

import doctest
import importlib
import inspect

import pytest

MODULES = [
    "conceptweb.analysis.detector",
    "conceptweb.analysis.dynamics",
    "conceptweb.analysis.events",
    "conceptweb.analysis.forgetting",
    "conceptweb.analysis.passk",
    "conceptweb.analysis.results",
    "conceptweb.analysis.stats",
    "conceptweb.analysis.summary",
    "conceptweb.analysis.topology",
    "conceptweb.analysis.trees",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0


@pytest.mark.parametrize("name", MODULES)
def test_public_names_are_listed_and_documented(name):
    module = importlib.import_module(name)
    assert module.__all__, name
    for attr in module.__all__:
        obj = getattr(module, attr)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            assert obj.__doc__, f"{name}.{attr} has no docstring"
