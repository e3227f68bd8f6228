"""The Concept Network Model: graph, problems, tabular policy and vectorised rollouts."""

from conceptweb.model.graph import ConceptGraph, random_regular_graph
from conceptweb.model.policy import entropy, log_softmax, softmax
from conceptweb.model.problems import ProblemSet, sample_problems
from conceptweb.model.rollouts import Rollouts, sample_rollouts

__all__ = [
    "ConceptGraph",
    "ProblemSet",
    "Rollouts",
    "random_regular_graph",
    "sample_problems",
    "sample_rollouts",
    "entropy",
    "log_softmax",
    "softmax",
]
