"""Analysis of runs: concept-web topology, training-dynamics diagnostics, SFT forgetting, summaries.

Readers (``load_*``: a run directory in, inputs out) are kept apart from the measurements
(``compute_*``, ``fit_*``, ``detect_*``: arrays and data frames in, frozen results with
``to_dict()`` out), so the same functions serve CoNet runs, LLM runs, webs given as edge lists
and the experiment suites. Every definition they implement is in docs/analysis.md. Nothing
here imports the user interfaces.
"""
