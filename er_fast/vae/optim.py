"""StackedAdam: Adam for stacked (S, ...) parameters whose update of seed s never depends on S.

torch.optim.Adam(fused=True) on the CPU rounds an element differently in its vector body and its
scalar tail, so the last elements of each tensor — which elements those are depends on S — get
other bits than when the seed trains alone. StackedAdam calls er_fast.ops.adam_ once per
parameter group per step: every element goes through the same correctly rounded operations
(docs/adam.md), in the vector body and the tail, on every ISA and on CUDA.

Semantics: torch.optim.Adam with its defaults (no weight decay, no amsgrad, not maximize), up to
rounding (the operation order of docs/adam.md). The step count lives on the parameters' device
as one 0-dim int64 tensor per parameter group (``group["step"]``), incremented by the op itself,
so the whole step can be captured in a CUDA graph; a group's step advances when any of its
parameters has a gradient, and parameters without one are skipped that step.
"""
from __future__ import annotations

import math

import torch

from ..ops.adam import adam_
from ..util.validation import fail, shown


def _check_hyper(lr, betas, eps):
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not math.isfinite(lr) or lr < 0:
        fail("lr", "be a finite number >= 0", shown(lr))
    if (not isinstance(betas, (tuple, list)) or len(betas) != 2
            or not all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in betas)):
        fail("betas", "be a pair of numbers in [0, 1)", shown(betas))
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not math.isfinite(eps) or eps < 0:
        fail("eps", "be a finite number >= 0", shown(eps))


class StackedAdam(torch.optim.Optimizer):
    """Adam (torch.optim.Adam's default update) through er_fast.ops.adam_: one call per parameter
    group per step. ``StackedAdam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8)``; params as any
    torch optimizer's (tensors or groups). Per parameter the state holds ``exp_avg`` and
    ``exp_avg_sq``; per group ``group["step"]`` is the step count (0-dim int64 on the device).
    state_dict / load_state_dict round-trip exactly (training continues bitwise)."""

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8):
        _check_hyper(lr, betas, eps)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps))

    def add_param_group(self, param_group: dict) -> None:
        _check_hyper(param_group.get("lr", self.defaults["lr"]), param_group.get("betas", self.defaults["betas"]),
                     param_group.get("eps", self.defaults["eps"]))
        super().add_param_group(param_group)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            ps, gs, ms, vs = [], [], [], []
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    fail("StackedAdam: every gradient", "be dense", "a sparse gradient", TypeError)
                state = self.state[p]
                if not state:
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.contiguous_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.contiguous_format)
                ps.append(p)
                gs.append(p.grad if p.grad.is_contiguous() else p.grad.contiguous())
                ms.append(state["exp_avg"])
                vs.append(state["exp_avg_sq"])
            if not ps:
                continue
            step = group.get("step")
            if step is None:
                group["step"] = step = torch.zeros((), dtype=torch.int64, device=ps[0].device)
            elif step.device != ps[0].device:  # e.g. loaded with map_location='cpu'
                group["step"] = step = step.to(ps[0].device)
            beta1, beta2 = group["betas"]
            adam_(ps, gs, ms, vs, step, group["lr"], beta1, beta2, group["eps"])
        return loss

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        # Optimizer.load_state_dict deep-copies the groups; give each step its own tensor on the
        # device of its parameters (the op increments it in place).
        for group in self.param_groups:
            step = group.get("step")
            if step is None:
                continue
            if not isinstance(step, torch.Tensor):
                step = torch.tensor(step, dtype=torch.int64)
            dev = group["params"][0].device if group["params"] else step.device
            group["step"] = step.detach().to(dev).clone()
