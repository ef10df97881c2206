"""PNG plots of a Table 1 run (matplotlib, headless)."""
from __future__ import annotations

import io
from typing import Dict, List

import numpy as np

from .files import atomic_write_bytes


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)
    atomic_write_bytes(path, buf.getvalue())


def embedding(t: np.ndarray, f_t: np.ndarray, path: str, title: str) -> None:
    """The learned embedding f(t), t in [0, 1], against the unit circle."""
    plt = _plt()
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 4.5))
    a = np.linspace(0, 2 * np.pi, 400)
    ax0.plot(np.cos(a), np.sin(a), "k--", lw=1, label="unit circle")
    sc = ax0.scatter(f_t[:, 0], f_t[:, 1], c=t, cmap="twilight", s=6, label="f(t)")
    fig.colorbar(sc, ax=ax0, label="t")
    ax0.set_aspect("equal")
    ax0.legend(loc="upper right", fontsize=8)
    ax0.set_title(title)
    ax1.plot(t, np.unwrap(np.arctan2(f_t[:, 1], f_t[:, 0])) / (2 * np.pi), label="angle(f(t)) / 2π")
    ax1.plot(t, np.linalg.norm(f_t, axis=1), label="|f(t)|")
    ax1.set_xlabel("t")
    ax1.legend(fontsize=8)
    ax1.set_title("angle and radius along [0, 1]")
    _save(fig, path)


def elbo_per_model(rows: List[dict], path: str) -> None:
    """Box plot of the per-seed ELBO of every model, seeds as jittered points."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(1.4 * len(rows) + 2, 4.5))
    data = [r["per_seed"]["elbo"] for r in rows]
    ax.boxplot(data, showfliers=False)
    rng = np.random.default_rng(0)
    for i, d in enumerate(data, start=1):
        ax.scatter(i + rng.uniform(-0.15, 0.15, len(d)), d, s=8, alpha=0.6)
    ax.set_xticks(range(1, len(rows) + 1), [r["model"] for r in rows], rotation=30, ha="right")
    ax.set_ylabel("held-out ELBO (nats / point)")
    ax.set_title(f"ELBO per model across seeds (n = {rows[0]['n_seeds']})")
    _save(fig, path)


def training_curves(curves: Dict[str, np.ndarray], steps: np.ndarray, path: str) -> None:
    """Median and 10-90% band over seeds of the training ELBO estimate per model."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for model, c in curves.items():
        med = np.median(c, axis=0)
        ax.plot(steps, med, label=model)
        ax.fill_between(steps, np.quantile(c, 0.1, axis=0), np.quantile(c, 0.9, axis=0), alpha=0.15)
    ax.set_xlabel("step")
    ax.set_ylabel("training ELBO (batch mean)")
    lo = min(np.quantile(c, 0.1, axis=0)[len(steps) // 10 :].min() for c in curves.values())
    hi = max(c.max() for c in curves.values())
    ax.set_ylim(lo - 0.05 * abs(hi - lo), hi + 0.05 * abs(hi - lo))
    ax.legend(fontsize=7)
    ax.set_title("training curves (median over seeds, 10-90% band)")
    _save(fig, path)


def reconstructions(x: np.ndarray, recon: Dict[str, np.ndarray], path: str) -> None:
    """A few held-out points (100-d vectors) and each model's mean reconstruction (seed 0)."""
    plt = _plt()
    p = x.shape[0]
    fig, axes = plt.subplots(p, 1, figsize=(9, 1.9 * p), sharex=True)
    axes = np.atleast_1d(axes)
    for i, ax in enumerate(axes):
        ax.plot(x[i], "k", lw=2, label="data")
        for model, r in recon.items():
            ax.plot(r[i], lw=1, label=model)
    axes[0].legend(fontsize=6, ncol=4, loc="upper right")
    axes[-1].set_xlabel("coordinate of x ∈ R^100")
    axes[0].set_title("held-out points and their reconstructions (first seed)")
    _save(fig, path)


def bench_scaling(ns: List[int], times: Dict[str, List[float]], path: str) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for name, t in times.items():
        ok = [(n, s) for n, s in zip(ns, t) if s == s]
        ax.loglog([a for a, _ in ok], [b for _, b in ok], "o-", label=name)
    ax.set_xlabel("n = m (points per sample)")
    ax.set_ylabel("forward + backward time (s)")
    ax.set_title("mmd_imq scaling, B = 1, d = 8")
    ax.legend()
    _save(fig, path)
