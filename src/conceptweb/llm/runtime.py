"""Process-level helpers: quiet libraries, process rank, freeing memory between phases."""

from __future__ import annotations

import gc
from typing import Any


def quiet_libraries(threads: int | None = None) -> None:
    """Silence library progress bars and deprecation chatter; set torch's CPU threads."""
    import warnings

    import datasets
    import torch
    import transformers

    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|trl|torch)")
    warnings.filterwarnings("ignore", message=".*pin_memory.*")
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    datasets.utils.logging.set_verbosity_error()
    if threads is not None:
        torch.set_num_threads(threads)


def quiet_trainer(trainer: Any) -> Any:
    """Remove the trainer's console printer and tqdm bar (the monitor reports progress)."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    return trainer


def world_size() -> int:
    from accelerate.state import PartialState

    return int(PartialState().num_processes)


def is_main_process() -> bool:
    from accelerate.state import PartialState

    return bool(PartialState().is_main_process)


def barrier() -> None:
    """Wait for every process (a no-op on one process)."""
    from accelerate.state import PartialState

    PartialState().wait_for_everyone()


def free_memory() -> None:
    """Collect garbage and empty the CUDA cache (between GRPO, heating and GRPO again)."""
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
