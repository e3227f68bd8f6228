"""Process-level helpers: quiet libraries, process rank, freeing memory between phases."""

from __future__ import annotations

import gc
from dataclasses import dataclass
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


def on_cpu() -> bool:
    """Whether this machine trains on CPU (no CUDA device)."""
    import torch

    return not torch.cuda.is_available()


def distributed_state() -> Any:
    """accelerate's PartialState; on a CPU-only machine with cpu=True, as the trainers' own
    (use_cpu), so that processes launched by torchrun or `accelerate launch` form one gloo
    group instead of each believing it is alone."""
    from accelerate.state import PartialState

    return PartialState(cpu=on_cpu())


def device_flags() -> dict[str, bool]:
    """TrainingArguments flags for this machine: use_cpu on a CPU-only one (several CPU
    processes then train as one DDP group over gloo)."""
    return {"use_cpu": True} if on_cpu() else {}


def world_size() -> int:
    return int(distributed_state().num_processes)


def is_main_process() -> bool:
    return bool(distributed_state().is_main_process)


def barrier() -> None:
    """Wait for every process (a no-op on one process)."""
    distributed_state().wait_for_everyone()


@dataclass(frozen=True)
class Collectives:
    """This process's rank among `world` and the object collectives of a sharded job
    (torch.distributed on the group accelerate set up; trivial on one process)."""

    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_gather(self, obj: Any) -> list[Any]:
        """Every process's `obj`, in rank order, on every process."""
        if self.world <= 1:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def gather(self, obj: Any) -> list[Any] | None:
        """Every process's `obj`, in rank order, on the main process; None on the others."""
        if self.world <= 1:
            return [obj]
        import torch.distributed as dist

        out: list[Any] | None = [None] * self.world if self.is_main else None
        dist.gather_object(obj, out, dst=0)
        return out

    def broadcast(self, obj: Any) -> Any:
        """The main process's `obj` on every process."""
        if self.world <= 1:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def collectives() -> Collectives:
    """This process's Collectives (under torchrun or `accelerate launch`, the launched group)."""
    state = distributed_state()
    return Collectives(int(state.process_index), int(state.num_processes))


def free_memory() -> None:
    """Collect garbage and empty the CUDA cache (between GRPO, heating and GRPO again)."""
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
