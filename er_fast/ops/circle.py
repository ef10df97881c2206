"""er_fast.circle_embed and er_fast.so2_rotate: argument checks, fake kernels, autograd, fallback.

The compiled ops accept a theta that broadcasts to the target shape; their backward ops return the
gradient wrt theta at the broadcast shape, and the autograd formula sums it back to theta's shape.
Both backward passes use the saved forward output (d out / d angle = (-out_y, out_x)), so
circle_embed's backward needs no sin/cos at all.
"""
from __future__ import annotations

import math
from typing import Optional

import torch

from ..util.validation import fail, tensor
from . import backend, reference

_LOW = (torch.float16, torch.bfloat16)


def _check_tensor(op: str, name: str, t) -> None:
    tensor(f"er_fast.{op}: {name}", t, floating=True)


def _check_theta(op: str, theta, like: torch.Tensor, like_name: str, target, target_name: str) -> None:
    _check_tensor(op, "theta", theta)
    if theta.dtype != like.dtype:
        fail(f"er_fast.{op}: theta", f"be of the dtype of {like_name} ({like.dtype})", theta.dtype, TypeError)
    if theta.device != like.device:
        fail(f"er_fast.{op}: theta", f"be on the device of {like_name} ({like.device})", theta.device)
    target = tuple(target)
    ok = theta.dim() <= len(target) and all(
        s == 1 or s == t for s, t in zip(reversed(tuple(theta.shape)), reversed(target))
    )
    if not ok:
        hint = " (add a trailing dimension: theta[..., None])" if op == "circle_embed" else ""
        fail(f"er_fast.{op}: theta", f"broadcast to {target_name} {target}{hint}", f"shape {tuple(theta.shape)}")


def circle_embed(z: torch.Tensor, theta: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Map z (..., k) onto the circle (k = 1) or the torus T^k: returns (..., k, 2).

    Each coordinate goes to (cos 2πz, sin 2πz), then is rotated counter-clockwise by theta
    (radians; broadcastable to z's shape, e.g. (..., 1) for one angle per point; None = no
    rotation). z is reduced modulo 1 before it is multiplied by 2π, so z and z + n (n integer)
    give the same point to the last bit. Differentiable wrt z and theta. float16/bfloat16 are
    computed in float32.
    """
    _check_tensor("circle_embed", "z", z)
    if z.dim() < 1:
        fail("er_fast.circle_embed: z", "have shape (..., k) (use z[None] for one point)", "a 0-dim tensor")
    if theta is not None:
        _check_theta("circle_embed", theta, z, "z", z.shape, "z's shape")
    dtype = z.dtype
    if dtype in _LOW:
        z = z.float()
        theta = None if theta is None else theta.float()
    if backend.compiled("circle_embed", z):
        out = torch.ops.er_fast.circle_embed(z, theta)
    else:
        out = reference.circle_embed(z, theta)
    return out.to(dtype)


def so2_rotate(p: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Rotate the points p (..., 2) counter-clockwise by theta (radians), theta broadcastable to
    p.shape[:-1]. Differentiable wrt p and theta. float16/bfloat16 are computed in float32."""
    _check_tensor("so2_rotate", "p", p)
    if p.dim() < 1 or p.shape[-1] != 2:
        fail("er_fast.so2_rotate: p", "have shape (..., 2)", tuple(p.shape))
    _check_theta("so2_rotate", theta, p, "p", p.shape[:-1], "p.shape[:-1]")
    dtype = p.dtype
    if dtype in _LOW:
        p, theta = p.float(), theta.float()
    if backend.compiled("so2_rotate", p):
        out = torch.ops.er_fast.so2_rotate(p, theta)
    else:
        out = reference.so2_rotate(p, theta)
    return out.to(dtype)


def _perp_dot(grad: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """grad . (-out_y, out_x): the derivative of the loss wrt the rotation angle."""
    return grad[..., 1] * out[..., 0] - grad[..., 0] * out[..., 1]


if backend.defined("circle_embed"):

    @torch.library.register_fake("er_fast::circle_embed")
    def _(z, theta):
        return z.new_empty((*z.shape, 2))

    @torch.library.register_fake("er_fast::circle_embed_backward")
    def _(grad, out, grad_z, grad_theta):
        batch = out.shape[:-1]
        return (out.new_empty(batch) if grad_z else out.new_empty(0),
                out.new_empty(batch) if grad_theta else out.new_empty(0))

    def _circle_setup(ctx, inputs, output):
        theta = inputs[1]
        ctx.theta_shape = None if theta is None else theta.shape
        ctx.save_for_backward(output)

    def _circle_backward(ctx, grad):
        (out,) = ctx.saved_tensors
        need_z = ctx.needs_input_grad[0]
        need_t = ctx.theta_shape is not None and ctx.needs_input_grad[1]
        if torch.is_grad_enabled():
            # create_graph=True: a differentiable formula (gradients flow on through `out`).
            a = _perp_dot(grad, out)
            dz, dt = 2 * math.pi * a, a
        else:
            dz, dt = torch.ops.er_fast.circle_embed_backward(grad, out, need_z, need_t)
        return (dz if need_z else None), (dt.sum_to_size(ctx.theta_shape) if need_t else None)

    torch.library.register_autograd("er_fast::circle_embed", _circle_backward, setup_context=_circle_setup)

if backend.defined("so2_rotate"):

    @torch.library.register_fake("er_fast::so2_rotate")
    def _(p, theta):
        return p.new_empty(p.shape)

    @torch.library.register_fake("er_fast::so2_rotate_backward")
    def _(grad, out, theta, grad_p, grad_theta):
        return (out.new_empty(out.shape) if grad_p else out.new_empty(0),
                out.new_empty(out.shape[:-1]) if grad_theta else out.new_empty(0))

    def _so2_setup(ctx, inputs, output):
        ctx.save_for_backward(output, inputs[1])

    def _so2_backward(ctx, grad):
        out, theta = ctx.saved_tensors
        need_p, need_t = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        if torch.is_grad_enabled():  # create_graph=True: differentiable formula
            dp = reference.so2_rotate(grad, -theta) if need_p else None  # R(theta)^T grad
            dt = _perp_dot(grad, out) if need_t else None
        else:
            dp, dt = torch.ops.er_fast.so2_rotate_backward(grad, out, theta, need_p, need_t)
        return (dp if need_p else None), (dt.sum_to_size(theta.shape) if need_t else None)

    torch.library.register_autograd("er_fast::so2_rotate", _so2_backward, setup_context=_so2_setup)
