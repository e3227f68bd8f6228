"""Learning on CoNet: Adam, GRPO, SFT, heating operators and the training loop."""
