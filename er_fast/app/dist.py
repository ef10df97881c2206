"""torch.distributed glue for `torchrun`: the seeds' work units are sharded round-robin over ranks."""
from __future__ import annotations

import os
from typing import Any, List

import torch
import torch.distributed as torch_dist


def init(device: str) -> tuple[int, int]:
    """Join the process group when launched by torchrun; returns (rank, world_size)."""
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1
    if not torch_dist.is_initialized():
        backend = "nccl" if device == "cuda" else "gloo"
        if device == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        torch_dist.init_process_group(backend=backend)
    return torch_dist.get_rank(), torch_dist.get_world_size()


def active() -> bool:
    return torch_dist.is_available() and torch_dist.is_initialized()


def barrier() -> None:
    if active():
        torch_dist.barrier()


def broadcast(obj: Any, src: int = 0) -> Any:
    """Rank src's obj on every rank (picklable Python data only)."""
    if not active():
        return obj
    box = [obj]
    torch_dist.broadcast_object_list(box, src=src)
    return box[0]


def gather(obj: Any) -> List[Any]:
    """Every rank's obj, on every rank (so no shared file system is needed to merge)."""
    if not active():
        return [obj]
    out: List[Any] = [None] * torch_dist.get_world_size()
    torch_dist.all_gather_object(out, obj)
    return out


def shutdown() -> None:
    if active():
        torch_dist.destroy_process_group()
