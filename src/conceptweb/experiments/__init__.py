"""Named, reproducible experiments: single runs, the reproduction suite, ablations."""
