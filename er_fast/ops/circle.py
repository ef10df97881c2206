"""er_fast.circle_embed and er_fast.so2_rotate: argument checks, fake kernels, autograd, fallback.

The compiled ops accept a theta that broadcasts to the target shape; their backward ops return the
gradient wrt theta at the broadcast shape, and the autograd formula sums it back to theta's shape.
Both backward passes and both forward-mode (jvp) formulas use the saved forward output
(d out / d angle = (-out_y, out_x)), so circle_embed's derivatives need no sin/cos at all.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch.autograd import forward_ad

from ..util.validation import fail, tensor
from . import backend, reference
from .autograd_impl import has_tangent, redispatch, register
from .fake_checks import check, check_float, check_same_device, check_same_dtype, expandable, sizes

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


def _perp_scale(out: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """(-out_y, out_x) * s: the tangent of a point on the circle turned by the angle tangent s."""
    return torch.stack((-out[..., 1], out[..., 0]), -1) * s[..., None]


def _differentiable_backward(*tensors) -> bool:
    """create_graph=True, or forward-mode AD over this backward: use the formulas in torch ops
    (differentiable, through the saved output) instead of the backward kernels."""
    return torch.is_grad_enabled() or has_tangent(*tensors)


def _fake_check_theta(op, theta, like, like_name, target, target_name) -> None:
    """csrc/common/circle_checks.h check_theta."""
    check_float(theta, op, "theta")
    check_same_dtype(like, theta, op, like_name, "theta")
    check_same_device(like, theta, op, like_name, "theta")
    check(expandable(theta.shape, target), op,
          lambda: f"theta must broadcast to {target_name} {sizes(target)}, got shape {sizes(theta.shape)}")


def _fake_check_so2(p, theta) -> None:
    """prep_so2 (so2_rotate_backward runs it on out, under so2_rotate's name, as the C++ does)."""
    check_float(p, "so2_rotate", "p")
    check(p.dim() >= 1 and p.shape[-1] == 2, "so2_rotate", lambda: f"p must have shape (..., 2), got {sizes(p.shape)}")
    _fake_check_theta("so2_rotate", theta, p, "p", p.shape[:-1], "p.shape[:-1]")


def _fake_check_grad_out(grad, out, op) -> None:
    """check_grad_out."""
    check_float(out, op, "out")
    check_same_dtype(out, grad, op, "out", "grad")
    check_same_device(out, grad, op, "out", "grad")
    check(out.dim() >= 1 and out.shape[-1] == 2, op, lambda: f"out must have shape (..., 2), got {sizes(out.shape)}")
    check(grad.shape == out.shape, op,
          lambda: f"grad must have the shape of out {sizes(out.shape)}, got {sizes(grad.shape)}")


if backend.defined("circle_embed"):
    _CIRCLE = torch.ops.er_fast.circle_embed.default

    @torch.library.register_fake("er_fast::circle_embed")
    def _(z, theta):
        check_float(z, "circle_embed", "z")
        check(z.dim() >= 1, "circle_embed", lambda: "z must have shape (..., k), got a 0-dim tensor")
        if theta is not None:
            _fake_check_theta("circle_embed", theta, z, "z", z.shape, "z's shape")
        return z.new_empty((*z.shape, 2))

    @torch.library.register_fake("er_fast::circle_embed_backward")
    def _(grad, out, grad_z, grad_theta):
        _fake_check_grad_out(grad, out, "circle_embed_backward")
        batch = out.shape[:-1]
        return (out.new_empty(batch) if grad_z else out.new_empty(0),
                out.new_empty(batch) if grad_theta else out.new_empty(0))

    class _CircleEmbed(torch.autograd.Function):
        """Both derivatives from the saved output: d out / d angle = (-out_y, out_x), angle = 2 pi z + theta.
        Every formula runs through `out`, so second derivatives come out right as well."""

        @staticmethod
        def forward(z, theta, keyset):
            return redispatch(_CIRCLE, keyset, (z, theta))

        @staticmethod
        def setup_context(ctx, inputs, output):
            theta = inputs[1]
            ctx.theta_shape = None if theta is None else theta.shape
            ctx.save_for_backward(output)
            ctx.save_for_forward(output)

        @staticmethod
        def backward(ctx, grad):
            (out,) = ctx.saved_tensors
            need_z = ctx.needs_input_grad[0]
            need_t = ctx.theta_shape is not None and ctx.needs_input_grad[1]
            if _differentiable_backward(grad, out):
                a = _perp_dot(grad, out)
                dz, dt = 2 * math.pi * a, a
            else:
                dz, dt = torch.ops.er_fast.circle_embed_backward(grad, out, need_z, need_t)
            return (dz if need_z else None), (dt.sum_to_size(ctx.theta_shape) if need_t else None), None

        @staticmethod
        def jvp(ctx, tz, ttheta, _):
            (out,) = ctx.saved_tensors
            # Forward grad back on (the C++ Function.apply runs jvp without it): under nested
            # torch.func.jvp the lower levels must see the tangents of `out` (jvp(jvp) is then exact).
            with forward_ad._set_fwd_grad_enabled(True):
                s = 2 * math.pi * tz if tz is not None else None
                if ttheta is not None:
                    s = ttheta if s is None else s + ttheta
                return _perp_scale(out, s.expand(out.shape[:-1]))

    register("circle_embed", _CircleEmbed)

if backend.defined("so2_rotate"):
    _SO2 = torch.ops.er_fast.so2_rotate.default

    @torch.library.register_fake("er_fast::so2_rotate")
    def _(p, theta):
        _fake_check_so2(p, theta)
        return p.new_empty(p.shape)

    @torch.library.register_fake("er_fast::so2_rotate_backward")
    def _(grad, out, theta, grad_p, grad_theta):
        _fake_check_grad_out(grad, out, "so2_rotate_backward")
        _fake_check_so2(out, theta)
        return (out.new_empty(out.shape) if grad_p else out.new_empty(0),
                out.new_empty(out.shape[:-1]) if grad_theta else out.new_empty(0))

    class _So2Rotate(torch.autograd.Function):
        """d out / d p = R(theta), d out / d theta = (-out_y, out_x)."""

        @staticmethod
        def forward(p, theta, keyset):
            return redispatch(_SO2, keyset, (p, theta))

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(output, inputs[1])
            ctx.save_for_forward(output, inputs[1])
            ctx.keyset = inputs[2]

        @staticmethod
        def backward(ctx, grad):
            out, theta = ctx.saved_tensors
            need_p, need_t = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
            if _differentiable_backward(grad, out, theta):
                dp = torch.ops.er_fast.so2_rotate(grad, -theta) if need_p else None  # R(theta)^T grad
                dt = _perp_dot(grad, out) if need_t else None
            else:
                dp, dt = torch.ops.er_fast.so2_rotate_backward(grad, out, theta, need_p, need_t)
            return (dp if need_p else None), (dt.sum_to_size(theta.shape) if need_t else None), None

        @staticmethod
        def jvp(ctx, tp, ttheta, _):
            out, theta = ctx.saved_tensors
            with forward_ad._set_fwd_grad_enabled(True):  # see _CircleEmbed.jvp
                # R(theta) tp by the kernel below this level's autograd (theta's own tangent here
                # belongs to the other term; lower torch.func levels still see theirs).
                t = redispatch(_SO2, ctx.keyset, (tp, theta)) if tp is not None else None
                if ttheta is not None:
                    turn = _perp_scale(out, ttheta.expand(out.shape[:-1]))
                    t = turn if t is None else t + turn
                return t

    register("so2_rotate", _So2Rotate)
