"""The distributed side of a training run (lab.training.loop), teacher training and distillation alike: which
rank this process is, where collectives run, and the few collectives the loop needs (mean of logged scalars,
gradients of modules DDP does not wrap, broadcast and gather of small objects).

Under ``torchrun`` (WORLD_SIZE > 1) the process group is gloo on CPU and nccl on CUDA, each rank on its
LOCAL_RANK's GPU; with one process every method is a no-op that returns its input.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from lab.errors import ConfigError


class DistEnv:
    def __init__(self, device: str):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = torch.device(device)
        self.initialized_here = False
        if self.world > 1:
            import torch.distributed as dist  # deferred: only multi-process runs need torch.distributed
            if self.device.type == "cuda":
                self.device = torch.device("cuda", self.local_rank)
                torch.cuda.set_device(self.device)
            if not dist.is_initialized():
                dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
                self.initialized_here = True
        elif self.device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device '{device}' was asked for but this machine has no CUDA GPU; set device = 'cpu'.")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self):
        if self.world > 1:
            # NCCL otherwise guesses the GPU of this rank (and warns it may hang if it guesses wrong).
            on_gpu = self.reduce_device().type == "cuda"
            torch.distributed.barrier(device_ids=[self.device.index] if on_gpu else None)

    def reduce_device(self) -> torch.device:
        """Where tensors for collectives must live: NCCL reduces CUDA tensors only (a CPU tensor kills the
        first step), gloo reduces CPU tensors."""
        backend = str(torch.distributed.get_backend()) if torch.distributed.is_initialized() else ""
        return self.device if self.device.type == "cuda" and "nccl" in backend else torch.device("cpu")

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        if self.world == 1 or not values:
            return values
        keys = sorted(values)
        t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=self.reduce_device())
        torch.distributed.all_reduce(t)
        return {k: float(v) / self.world for k, v in zip(keys, t.tolist())}

    def wrap(self, model: nn.Module) -> nn.Module:
        """``model`` in DistributedDataParallel when there is more than one rank (else as it is); on CUDA
        pinned to this rank's GPU, as DDP wants for single-device modules."""
        if self.world == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel  # deferred: only multi-process runs need it
        on_gpu = {"device_ids": [self.device.index], "output_device": self.device.index} \
            if self.device.type == "cuda" else {}
        return DistributedDataParallel(model, find_unused_parameters=True, **on_gpu)

    def average_grads(self, params) -> None:
        """Average the gradients of ``params`` over the ranks (for what DDP does not wrap, e.g. a discriminator);
        every rank must pass the same parameters, with gradients in the same places."""
        if self.world == 1:
            return
        for p in params:
            if p.grad is not None:
                torch.distributed.all_reduce(p.grad)
                p.grad /= self.world

    def broadcast(self, obj):
        if self.world == 1:
            return obj
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj) -> list:
        if self.world == 1:
            return [obj]
        out = [None] * self.world
        torch.distributed.all_gather_object(out, obj)
        return out

    def close(self):
        if self.initialized_here:
            torch.distributed.destroy_process_group()
