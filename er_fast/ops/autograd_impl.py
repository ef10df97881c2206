"""The Autograd kernels of er_fast's custom ops: reverse mode AND forward mode.

Why not ``torch.library.register_autograd``: in torch 2.13 the kernel it registers runs the op
without autograd unless an input ``requires_grad``, so a forward-mode tangent (``torch.func.jvp``,
``torch.autograd.forward_ad``) is silently dropped (zero tangent); and its generated
autograd.Function has no ``setup_context``, so ``torch.func.grad``/``jvp``/``jacrev`` raise.

``register(op, Fn)`` installs the same kind of Autograd-key kernel (the op's own kernel runs below
autograd, like torch's), but it routes through ``Fn`` (an autograd.Function in setup_context
style, with ``backward`` and ``jvp``) whenever an input requires grad OR carries a forward-mode
tangent. The tangent test reads tensor metadata only (no host sync). Because this is the op's
kernel, it holds for every caller: eager, torch.func transforms, torch.compile (which traces the
op, not this Python), and direct ``torch.ops.er_fast.*`` calls.
"""
from __future__ import annotations

import math

import torch
from torch._functorch.utils import enable_single_level_autograd_function
from torch.autograd import forward_ad

_LIB = torch.library.Library("er_fast", "IMPL")  # kept alive: the registrations live as long as it


def has_tangent(*args) -> bool:
    """Whether any tensor among args carries a forward-mode tangent at the current level."""
    if forward_ad._current_level < 0:  # outside every dual_level / torch.func.jvp: nothing to check
        return False
    return any(isinstance(t, torch.Tensor) and forward_ad.unpack_dual(t).tangent is not None for t in args)


def redispatch(op, keyset, args):
    """Run ``op`` below autograd (its CPU / CUDA / fake kernel), as torch's generated kernels do.

    Grad and forward-grad modes are switched back on (autograd.Function.forward runs without
    them): under nested torch.func transforms the op goes on to the next lower level, which must
    see its own gradients and tangents (functorch's custom_function_call lowers the same way).
    Without functorch nothing below this point records anything: the autograd keys are excluded."""
    with torch.enable_grad(), forward_ad._set_fwd_grad_enabled(True), torch._C._AutoDispatchBelowAutograd():
        return op.redispatch(keyset & torch._C._after_autograd_keyset, *args)


def _plain_apply(fn, *args):
    # functorch's own autograd.Function support does the same (enable_single_level_autograd_function).
    with enable_single_level_autograd_function():
        return super(torch.autograd.Function, fn).apply(*args)


def register(name: str, fn: type[torch.autograd.Function]) -> None:
    """Make ``fn.apply(*args, keyset)`` the Autograd kernel of er_fast::name when gradients or
    tangents are in play; ``fn.forward`` must end with ``redispatch(op, keyset, args)``."""
    op = getattr(torch.ops.er_fast, name).default

    def autograd_kernel(keyset, *args):
        if (torch.is_grad_enabled() and torch._C._any_requires_grad(*args)) or has_tangent(*args):
            # The plain (C++) Function.apply, not Function.apply: under torch.func transforms the
            # latter re-enters functorch as a higher-order op, which has no kernel at the Autograd
            # key this kernel runs at; the functorch layers have already unwrapped these tensors
            # to their level, where plain autograd (and forward AD) is the right machinery.
            return _plain_apply(fn, *args, keyset)
        return redispatch(op, keyset, args)

    _LIB.impl(name, autograd_kernel, "Autograd", with_keyset=True)


def _second_order_error(op: str) -> RuntimeError:
    return RuntimeError(f"{op}: second derivatives (double backward, forward-over-reverse, reverse-over-forward "
                        "or forward-over-forward) are not supported")


def refuse_second_order(op: str, *grads) -> None:
    """For backward: raise when a gradient flows into an output that is itself a first derivative."""
    if any(g is not None for g in grads):
        raise _second_order_error(op)


def refuse_nested_differentiation(op: str) -> None:
    """For ops without second derivatives: raise inside two nested torch.func differentiation
    transforms (jvp(jvp(f)), grad(grad(f)), jacfwd(jacrev(f)), ...). Not every nesting reaches the
    guards below (a tangent of a tangent crosses functorch levels where the op's saved gradients
    are plain constants), so it is refused where it starts. vmap levels do not count."""
    if torch.compiler.is_compiling():  # dynamo cannot trace the stack query; it sees no transforms
        return
    diff = (torch._C._functorch.TransformType.Grad, torch._C._functorch.TransformType.Jvp)
    stack = torch._C._functorch.get_interpreter_stack() or ()
    if sum(1 for i in stack if i.key() in diff) >= 2:
        raise _second_order_error(op)


def derivative_outputs_differentiable() -> bool:
    """Whether an op's returned first derivatives (mmd_imq's dx, beta_rsample's dx/dalpha) should
    be differentiable outputs of its autograd.Function, with a backward that raises and NaN
    tangents: under forward AD or torch.func transforms, where a second-order use would otherwise
    meet constants and give silently wrong (zero) second derivatives. Outside them they stay
    non-differentiable, as opcheck expects (it sums every output that requires grad)."""
    return forward_ad._current_level >= 0 or torch._C._functorch.peek_interpreter_stack() is not None


def save_with_first_derivatives(ctx, derivatives, *tensors) -> None:
    """setup_context of an op that returns its own first derivatives beside its value: those are
    differentiable outputs only where derivative_outputs_differentiable() says so; the derivatives,
    then ``tensors``, are saved for backward and for forward mode (ctx.saved_tensors in that order)."""
    ctx.set_materialize_grads(False)
    if not derivative_outputs_differentiable():
        ctx.mark_non_differentiable(*derivatives)
    ctx.save_for_backward(*derivatives, *tensors)
    ctx.save_for_forward(*derivatives, *tensors)


def derivative_tangents(like: torch.Tensor, *shapes) -> tuple:
    """The tangents of an op's first-derivative outputs, for its jvp: their own derivatives (second
    derivatives) are not implemented, so NaN of each shape, never 0."""
    nan = torch.full((), math.nan, dtype=like.dtype, device=like.device)
    return tuple(nan.expand(s) for s in shapes)


class _Guard(torch.autograd.Function):
    generate_vmap_rule = True  # jacrev / jacfwd vmap over it
    """guard(op, t) = 0 (a 0-dim tensor), added to a first derivative that was formed from the op's
    saved gradients. Those are constants to autograd, so differentiating the first derivative again
    (in either mode) would silently miss the second-derivative term; the guard's own derivative,
    reached exactly then, raises instead."""

    @staticmethod
    def forward(t, op):
        return t.new_zeros(())

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.op = inputs[1]

    @staticmethod
    def backward(ctx, grad):
        raise _second_order_error(ctx.op)

    @staticmethod
    def jvp(ctx, t_tangent, _):
        raise _second_order_error(ctx.op)


def guard(op: str, *tensors) -> torch.Tensor | float:
    """0, wired to every tensor in ``tensors`` that could be differentiated again (see _Guard)."""
    g = 0.0
    for t in tensors:
        if isinstance(t, torch.Tensor) and ((torch.is_grad_enabled() and t.requires_grad) or has_tangent(t)):
            g = g + _Guard.apply(t, op)
    return g
