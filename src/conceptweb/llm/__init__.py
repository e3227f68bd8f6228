"""RLVR diagnostics and Annealed-RLVR for real language models on TRL (the [llm] extra)."""
