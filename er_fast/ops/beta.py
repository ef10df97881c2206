"""er_fast.beta_rsample / beta_rsample_grad: the ops' Python face (checks, random keys, fake
kernels, autograd, reference fallback).

Random streams: every call draws a 128-bit key (two int64) from the torch generator and passes it
to the kernel, which runs Philox4x32-10 keyed by it with the element index as counter. Samples are
a pure function of (key, element index, alpha, beta): the same generator state gives the same
samples on any thread count or launch configuration.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import torch

from .reference import beta as _ref
from . import backend
from .autograd_impl import (derivative_tangents, guard, redispatch, refuse_nested_differentiation, refuse_second_order,
                            register, save_with_first_derivatives)
from .fake_checks import check, check_float, check_same_device, check_same_dtype, scalar_type, sizes

OP = "er_fast.beta_rsample"
SUPPORTED_RANGE = _ref.SUPPORTED_RANGE  # concentrations; csrc/common/beta_math.h kMin/kMaxConcentration

GeneratorArg = Optional[Union[torch.Generator, Sequence[torch.Generator]]]

_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1


def _as_param(name: str, v, like: Optional[torch.Tensor]) -> torch.Tensor:
    if isinstance(v, torch.Tensor):
        return v
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        if like is not None:
            return torch.tensor(float(v), dtype=like.dtype, device=like.device)
        return torch.tensor(float(v), dtype=torch.get_default_dtype())
    raise TypeError(f"er_fast.beta_rsample: {name} must be a torch.Tensor or a real number, got {type(v).__name__}")


def _check_dtype(fn: str, name: str, t: torch.Tensor) -> None:
    if t.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{fn}: {name} must be float32 or float64, got {t.dtype}")


def _params(fn: str, alpha, beta, validate: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    alpha = _as_param("alpha", alpha, beta if isinstance(beta, torch.Tensor) else None)
    beta = _as_param("beta", beta, alpha)
    _check_dtype(fn, "alpha", alpha)
    _check_dtype(fn, "beta", beta)
    if alpha.device != beta.device:
        raise ValueError(f"{fn}: beta must be on the device of alpha ({alpha.device}), got {beta.device}")
    if alpha.dtype != beta.dtype:
        dt = torch.promote_types(alpha.dtype, beta.dtype)
        alpha, beta = alpha.to(dt), beta.to(dt)
    if validate and not torch.compiler.is_compiling():
        # One reduction (a device sync on CUDA); skipped under torch.compile, where invalid
        # parameters give NaN samples instead.
        lo, hi = SUPPORTED_RANGE
        for name, t in (("alpha", alpha), ("beta", beta)):
            ok = (t >= lo) & (t <= hi)  # NaN fails both
            if not bool(ok.all()):
                bad = t.detach()[~ok].reshape(-1)[0].item()
                raise ValueError(f"{fn}: every {name} must be in the supported range [{lo:g}, {hi:g}] (where the "
                                 f"gradient is verified, docs/ops.md), got {bad}")
    return alpha, beta


def _broadcast(fn: str, *shapes) -> torch.Size:
    try:
        return torch.broadcast_shapes(*shapes)
    except RuntimeError as e:
        raise ValueError(f"{fn}: the shapes must broadcast together, got {[tuple(s) for s in shapes]}") from e


def _key(gen: Optional[torch.Generator], device: torch.device) -> torch.Tensor:
    if gen is None:
        return torch.randint(_I64_MIN, _I64_MAX, (2,), dtype=torch.int64, device=device)
    return torch.randint(_I64_MIN, _I64_MAX, (2,), dtype=torch.int64, generator=gen, device=gen.device)


def _keys(generator: GeneratorArg, shape: torch.Size, device: torch.device) -> torch.Tensor:
    """(2,) for None / one generator; (S, 2) for S generators (one stream per leading slice)."""
    if generator is None or isinstance(generator, torch.Generator):
        if generator is not None and torch.device(generator.device).type != device.type:
            raise ValueError(f"er_fast.beta_rsample: generator must be on the parameters' device ({device}), "
                             f"got {generator.device}")
        return _key(generator, device)
    if isinstance(generator, (str, bytes)) or not isinstance(generator, Sequence):
        raise TypeError(f"er_fast.beta_rsample: generator must be None, a torch.Generator or a sequence of them, "
                        f"got {type(generator).__name__}")
    gens = list(generator)
    for g in gens:
        if not isinstance(g, torch.Generator):
            raise TypeError(f"er_fast.beta_rsample: every item of generator must be a torch.Generator, "
                            f"got {type(g).__name__}")
        if torch.device(g.device).type != device.type:
            raise ValueError(f"er_fast.beta_rsample: every generator must be on the parameters' device ({device}), "
                             f"got {g.device}")
    if len(shape) == 0 or shape[0] != len(gens) or len(gens) == 0:
        raise ValueError(f"er_fast.beta_rsample: the output must have leading dimension {len(gens)} (one per "
                         f"generator), got shape {tuple(shape)}")
    return torch.stack([_key(g, device).to(device) for g in gens])


def beta_rsample(
    alpha: torch.Tensor,
    beta: torch.Tensor,
    sample_shape: torch.Size = torch.Size(),
    *,
    generator: GeneratorArg = None,
    validate_args: bool = True,
) -> torch.Tensor:
    """x ~ Beta(alpha, beta), shape ``sample_shape + broadcast(alpha, beta).shape``, in (0, 1),
    differentiable in alpha and beta by the exact implicit reparameterization gradient
    dx/dalpha = -(dI_x/dalpha) / p(x) (likewise beta).

    ``generator``: None (torch's default generator of the parameters' device), one
    torch.Generator, or a sequence of S generators: then the output's leading dimension must be S
    and slice s is drawn from generator s alone (equal to drawing that slice by itself with
    generator s). Each call advances each generator used by one 128-bit draw.

    Samples are computed in float64 and rounded to the parameters' dtype (float32 or float64);
    values that round to 0 or 1 are clamped to the dtype's smallest normal number and its largest
    number below 1. Concentrations must lie in SUPPORTED_RANGE, [1e-3, 1e5] (where the gradient
    is verified); else ValueError. ``validate_args=False`` skips that check (a device sync on
    CUDA); parameters outside the range then give NaN.
    """
    fn = "er_fast.beta_rsample"
    refuse_nested_differentiation(fn)
    alpha, beta = _params(fn, alpha, beta, validate_args)
    try:
        sample_shape = torch.Size(sample_shape)
    except TypeError as e:
        raise TypeError(f"{fn}: sample_shape must be a sequence of ints, got {sample_shape!r}") from e
    if any(s < 0 for s in sample_shape):
        raise ValueError(f"{fn}: sample_shape must be non-negative, got {tuple(sample_shape)}")
    shape = sample_shape + _broadcast(fn, alpha.shape, beta.shape)
    key = _keys(generator, shape, alpha.device)
    a, b = alpha.expand(shape), beta.expand(shape)
    if backend.compiled("beta_rsample", a):
        with_grad = torch.is_grad_enabled() and (a.requires_grad or b.requires_grad)
        return torch.ops.er_fast.beta_rsample(a, b, key, with_grad)[0]
    return _ref.BetaRsample.apply(a, b, key)


def beta_rsample_keyed(alpha: torch.Tensor, beta: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    """beta_rsample with an explicit Philox key instead of a generator: ``key`` int64 (2,) or
    (S, 2) (one stream per leading slice), on the parameters' device; alpha and beta float32 or
    float64 of the output's shape (broadcast first). No validation of the concentrations (that
    would be a host sync on CUDA): invalid ones give NaN. Used by the trainer, whose keys come from
    counter-based streams (er_fast.vae.seeds), so a step needs no draw from a torch.Generator."""
    fn = "er_fast.beta_rsample_keyed"
    refuse_nested_differentiation(OP)
    if alpha.shape != beta.shape:
        raise ValueError(f"{fn}: beta must have the shape of alpha {tuple(alpha.shape)}, got {tuple(beta.shape)}")
    if backend.compiled("beta_rsample", alpha):
        with_grad = torch.is_grad_enabled() and (alpha.requires_grad or beta.requires_grad)
        return torch.ops.er_fast.beta_rsample(alpha, beta, key, with_grad)[0]
    return _ref.BetaRsample.apply(alpha, beta, key)


def beta_rsample_grad(x: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """(dx/dalpha, dx/dbeta) of the implicit reparameterization at points x (broadcasting), the
    gradient beta_rsample's backward uses. Not differentiable itself. Exactly 0 at x = 0 or 1;
    NaN for x outside [0, 1]."""
    fn = "er_fast.beta_rsample_grad"
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{fn}: x must be a torch.Tensor, got {type(x).__name__}")
    _check_dtype(fn, "x", x)
    alpha, beta = _params(fn, alpha, beta, validate=True)
    if x.device != alpha.device:
        raise ValueError(f"{fn}: x must be on the device of alpha ({alpha.device}), got {x.device}")
    dt = torch.promote_types(x.dtype, alpha.dtype)
    x, alpha, beta = x.detach().to(dt), alpha.detach().to(dt), beta.detach().to(dt)
    shape = _broadcast(fn, x.shape, alpha.shape, beta.shape)
    x, alpha, beta = x.expand(shape), alpha.expand(shape), beta.expand(shape)
    if backend.compiled("beta_rsample_grad", x):
        return tuple(torch.ops.er_fast.beta_rsample_grad(x, alpha, beta))
    return _ref.beta_rsample_grad(x, alpha, beta)


def _fake_check_params(op: str, alpha: torch.Tensor, beta: torch.Tensor) -> None:
    """check_beta_params of csrc/common/beta_checks.h (device type left to the real kernels)."""
    check_float(alpha, op, "alpha")
    check_same_dtype(alpha, beta, op, "alpha", "beta")
    check(alpha.shape == beta.shape, op,
          lambda: f"beta must have the (broadcast) shape of alpha {sizes(alpha.shape)}, got {sizes(beta.shape)}")
    check_same_device(alpha, beta, op, "alpha", "beta")


def _fake_check(alpha: torch.Tensor, beta: torch.Tensor, key: torch.Tensor) -> None:
    """csrc/common/beta_checks.h (check_beta_params, check_beta_key) for the fake kernel, in its words."""
    op = "beta_rsample"
    _fake_check_params(op, alpha, beta)
    check_same_device(alpha, key, op, "alpha", "key")
    check(key.dtype == torch.int64, op, lambda: f"key must be int64, got {scalar_type(key.dtype)}")
    check((key.dim() == 1 and key.shape[0] == 2) or (key.dim() == 2 and key.shape[1] == 2 and key.shape[0] >= 1), op,
          lambda: f"key must have shape (2,) or (S, 2), got {sizes(key.shape)}")
    nk = 1 if key.dim() == 1 else key.shape[0]
    check(nk == 1 or (alpha.dim() >= 1 and alpha.shape[0] == nk), op,
          lambda: f"alpha must have leading dimension {nk} (one per key row), got shape {sizes(alpha.shape)}")


if backend.defined("beta_rsample"):
    _OP = torch.ops.er_fast.beta_rsample.default

    @torch.library.register_fake("er_fast::beta_rsample")
    def _(alpha, beta, key, with_grad):
        _fake_check(alpha, beta, key)
        shape = alpha.shape
        g = (lambda: alpha.new_empty(shape)) if with_grad else (lambda: alpha.new_empty(0))
        return alpha.new_empty(shape), g(), g()

    class _BetaRsample(torch.autograd.Function):
        """The op's autograd. Reverse mode scales the implicit gradients dx/dalpha, dx/dbeta that
        the op returned; forward mode contracts them with the tangents, dx/dalpha t_alpha +
        dx/dbeta t_beta (computed once more by beta_rsample_grad when the op was called without
        them). Second derivatives are not implemented: they raise (guard), never give 0."""

        @staticmethod
        def forward(alpha, beta, key, with_grad, keyset):
            return redispatch(_OP, keyset, (alpha, beta, key, with_grad))

        @staticmethod
        def setup_context(ctx, inputs, output):
            x, da, db = output
            save_with_first_derivatives(ctx, (da, db), x, inputs[0], inputs[1])
            ctx.with_grad = inputs[3]
            ctx.out_shapes = (da.shape, db.shape)  # empty when with_grad is False

        @staticmethod
        def backward(ctx, grad, dda, ddb):
            refuse_second_order(OP, dda, ddb)
            if grad is None:
                return (None,) * 5
            if not ctx.with_grad and (ctx.needs_input_grad[0] or ctx.needs_input_grad[1]):
                raise RuntimeError(f"{OP}: gradient requested but the op was told not to compute it")
            da, db, _, alpha, beta = ctx.saved_tensors
            g = guard(OP, alpha, beta)  # 0; raises if these gradients are differentiated again
            ga = grad * da + g if ctx.needs_input_grad[0] else None
            gb = grad * db + g if ctx.needs_input_grad[1] else None
            return ga, gb, None, None, None

        @staticmethod
        def jvp(ctx, ta, tb, *_):
            da, db, x, alpha, beta = ctx.saved_tensors
            if not ctx.with_grad:
                da, db = torch.ops.er_fast.beta_rsample_grad(x.detach(), alpha.detach(), beta.detach())
            t = guard(OP, alpha, beta)
            for d, tg in ((da, ta), (db, tb)):
                if tg is not None:
                    t = t + d * tg
            return (t, *derivative_tangents(x, *ctx.out_shapes))

    register("beta_rsample", _BetaRsample)

if backend.defined("beta_rsample_grad"):

    @torch.library.register_fake("er_fast::beta_rsample_grad")
    def _(x, alpha, beta):
        op = "beta_rsample_grad"  # check_beta_params + check_beta_points
        _fake_check_params(op, alpha, beta)
        check_same_device(alpha, x, op, "alpha", "x")
        check_same_dtype(alpha, x, op, "alpha", "x")
        check(x.shape == alpha.shape, op,
              lambda: f"x must have the (broadcast) shape of alpha and beta {sizes(alpha.shape)}, got {sizes(x.shape)}")
        return x.new_empty(x.shape), x.new_empty(x.shape)
