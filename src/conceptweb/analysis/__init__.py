"""Analysis of runs: concept-web topology, training-dynamics diagnostics, SFT forgetting, summaries.

Everything here takes plain arrays, data frames or run directories; nothing imports the
user interfaces, so the same functions serve CoNet runs, LLM runs and the experiment suites.
"""
