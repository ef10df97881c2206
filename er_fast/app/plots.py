"""PNG plots of a Table 1 run (matplotlib, headless).

Every model keeps one colour in every plot (its place in the registry's table order), legends sit
outside the axes, and axis ranges come from the data shown.
"""
from __future__ import annotations

import io
import math
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..vae.specs import list_models
from .files import atomic_write_bytes

VERDICT_STYLE = {  # colour, marker
    "reproduced": ("#1a9850", "o"),
    "reversed": ("#d73027", "s"),
    "not resolved": ("#777777", "D"),
}


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


def model_colors(models: Sequence[str]) -> Dict[str, tuple]:
    """One fixed colour per model id: its index in the registry (tab10), unknown ids after them."""
    cmap = _plt().get_cmap("tab10")
    known = [s.id for s in list_models()]
    order = known + [m for m in models if m not in known]
    return {m: cmap(order.index(m) % 10) for m in models}


def _grid(n: int, ncols: int):
    ncols = min(n, ncols)
    return math.ceil(n / ncols), ncols


def embedding(t: np.ndarray, f_t: np.ndarray, path: str, title: str) -> None:
    """The learned embedding f(t), t in [0, 1], against the unit circle (colour = t), and its
    angle and radius along t (a perfect f: angle rising linearly by one turn, radius 1)."""
    plt = _plt()
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11.5, 4.6), gridspec_kw={"width_ratios": [1.15, 1], "wspace": 0.45})
    a = np.linspace(0, 2 * np.pi, 400)
    ax0.plot(np.cos(a), np.sin(a), "k--", lw=1, label="unit circle (target)")
    sc = ax0.scatter(f_t[:, 0], f_t[:, 1], c=t, cmap="viridis", s=7, label="f(t), coloured by t")
    ax0.plot(*f_t[0], "k^", ms=8, label="f(0)")
    ax0.plot(*f_t[-1], "kv", ms=8, label="f(1)")
    cb = fig.colorbar(sc, ax=ax0, fraction=0.046, pad=0.04)
    cb.set_label("t ∈ [0, 1] (latent coordinate)")
    ax0.set_aspect("equal")
    lim = 1.15 * max(1.0, float(np.abs(f_t).max()))
    ax0.set_xlim(-lim, lim)
    ax0.set_ylim(-lim, lim)
    ax0.set_xlabel("f(t)₁")
    ax0.set_ylabel("f(t)₂")
    ax0.legend(loc="upper left", bbox_to_anchor=(0, -0.13), ncol=2, fontsize=8, frameon=False)
    ax0.set_title(title)
    angle = np.unwrap(np.arctan2(f_t[:, 1], f_t[:, 0]))
    turns = (angle - angle[0]) / (2 * np.pi)
    turns = turns if turns[-1] >= 0 else -turns  # either orientation is a perfect f
    ax1.plot(t, turns, label="angle travelled from f(0), turns (orientation ignored)")
    ax1.plot(t, np.linalg.norm(f_t, axis=1), label="|f(t)| (radius)")
    ax1.plot([0, 1], [0, 1], ":", color="grey", lw=1, label="ideal angle (one turn)")
    ax1.axhline(1, color="grey", lw=0.6)
    ax1.set_xlabel("t")
    ax1.legend(loc="upper left", bbox_to_anchor=(0, -0.13), fontsize=8, frameon=False)
    ax1.set_title("angle and radius along t")
    _save(fig, path)


def elbo_per_model(rows: List[dict], path: str, metric: str = "elbo") -> None:
    """Box plot of the per-seed ``metric`` of every model, seeds as jittered points, and the paper's
    ELBO (mean ± std) beside the rows it reports."""
    from .paper import PAPER_TABLE1

    plt = _plt()
    fig, ax = plt.subplots(figsize=(1.2 * len(rows) + 3, 4.8))
    colors = model_colors([r["model"] for r in rows])
    data = [r["per_seed"][metric] for r in rows]
    ax.boxplot(data, showfliers=False, widths=0.5, medianprops={"color": "k"})
    rng = np.random.default_rng(0)
    for i, (r, d) in enumerate(zip(rows, data), start=1):
        ax.scatter(i + rng.uniform(-0.17, 0.17, len(d)), d, s=8, alpha=0.55, color=colors[r["model"]], zorder=3)
        if metric == "elbo" and r["model"] in PAPER_TABLE1:
            _, mean, std = PAPER_TABLE1[r["model"]]
            ax.errorbar(i + 0.36, mean, yerr=std, fmt="x", color="k", ms=7, capsize=3, zorder=4,
                        label="paper (mean ± std)" if not ax.get_legend_handles_labels()[1] else None)
    ax.set_xticks(range(1, len(rows) + 1), [r["model"] for r in rows], rotation=30, ha="right")
    ax.set_ylabel(f"held-out {metric.upper()} (nats / point)")
    ax.set_title(f"{metric.upper()} per model across seeds (n = {rows[0]['n_seeds']}; "
                 "box: quartiles, whiskers 1.5 IQR)")
    if ax.get_legend_handles_labels()[1]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    _save(fig, path)


def curve_ylim(curves: Dict[str, np.ndarray], steps: np.ndarray) -> tuple[float, float]:
    """A y-range that holds every band (10-90% over seeds) and median in full after the first
    logged step (where every curve starts from the same untrained, far-lower value: shown as a note)."""
    keep = steps > steps.min() if len(steps) > 2 else np.ones_like(steps, dtype=bool)
    lo = min(float(np.quantile(c[:, keep], 0.1, axis=0).min()) for c in curves.values())
    hi = max(float(np.quantile(c[:, keep], 0.9, axis=0).max()) for c in curves.values())
    pad = 0.05 * (hi - lo if hi > lo else 1.0)
    return lo - pad, hi + pad


def training_curves(curves: Dict[str, np.ndarray], steps: np.ndarray, path: str) -> None:
    """Training ELBO per model, one panel each (shared axes): median over seeds (line) and the
    10-90% band of seeds (shaded), the other models' medians in grey for comparison."""
    plt = _plt()
    models = list(curves)
    nr, nc = _grid(len(models), 4)
    fig, axes = plt.subplots(nr, nc, figsize=(3.3 * nc, 2.7 * nr + 0.6), sharex=True, sharey=True, squeeze=False)
    colors = model_colors(models)
    meds = {m: np.median(c, axis=0) for m, c in curves.items()}
    ylim = curve_ylim(curves, steps)
    for ax, m in zip(axes.flat, models):
        for other in models:
            if other != m:
                ax.plot(steps, meds[other], color="0.75", lw=0.8, zorder=1)
        c = curves[m]
        ax.fill_between(steps, np.quantile(c, 0.1, axis=0), np.quantile(c, 0.9, axis=0), color=colors[m],
                        alpha=0.25, lw=0, zorder=2)
        ax.plot(steps, meds[m], color=colors[m], lw=1.8, zorder=3)
        ax.set_title(f"{m} ({c.shape[0]} seeds)", fontsize=9)
        ax.set_ylim(*ylim)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(models):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("training step")
    for ax in axes[:, 0]:
        ax.set_ylabel("training ELBO\n(batch mean, nats)")
    first = min(float(np.median(c[:, 0])) for c in curves.values())
    fig.suptitle("Training curves: median over seeds (line), 10–90% of seeds (band), other models' medians (grey)"
                 + (f"\nthe first logged step (median down to {first:.0f}) is below the range shown"
                    if first < ylim[0] else ""), fontsize=10)
    _save(fig, path)


def reconstructions(x: np.ndarray, recon: Dict[str, np.ndarray], path: str, *, max_points: int = 3,
                    clean: Optional[np.ndarray] = None) -> None:
    """A few held-out points x (P, D) and each model's mean reconstruction (its first seed).

    Reconstructions lie within a few hundredths of the data, so overlaid on x they are invisible:
    the first panel shows the points, one panel per model shows its residual on a shared scale,
    titled with the RMS residual. The residual is taken against x, or against ``clean`` (P, D), the
    noise-free points g(u) behind a noisy x, when given (a perfect model then has residual 0, not
    the noise)."""
    plt = _plt()
    p = min(x.shape[0], max_points)
    models = list(recon)
    nr, nc = _grid(len(models) + 1, 3)
    fig, axes = plt.subplots(nr, nc, figsize=(4.2 * nc, 2.5 * nr + 0.7), sharex=True, squeeze=False)
    point_colors = ["#000000", "#e66101", "#5e3c99", "#1b7837"][:p] + ["0.5"] * max(0, p - 4)
    coord = np.arange(x.shape[1])
    ax = axes.flat[0]
    shift = 1.2 * float(np.ptp(x[:p], axis=1).max())  # points stacked apart: they are often near each other
    for i in range(p):
        ax.plot(coord, x[i] - i * shift, color=point_colors[i], lw=1.0)
    ax.set_yticks([float(np.median(x[i])) - i * shift for i in range(p)], [f"point {i + 1}" for i in range(p)],
                  fontsize=8)
    for i, lab in enumerate(ax.get_yticklabels()):
        lab.set_color(point_colors[i])
    ax.set_title(f"held-out points x (data, offset by {shift:.2f})", fontsize=9)
    ref = x if clean is None else np.asarray(clean)
    res = {m: np.asarray(recon[m])[:p] - ref[:p] for m in models}
    lim = 1.1 * max(float(np.abs(r).max()) for r in res.values()) or 1.0
    for ax, m in zip(axes.flat[1:], models):
        for i in range(p):
            ax.plot(coord, res[m][i], color=point_colors[i], lw=0.9)
        rms = float(np.sqrt((res[m] ** 2).mean()))
        ax.axhline(0, color="0.6", lw=0.6)
        ax.set_ylim(-lim, lim)
        ax.set_title(f"{m}: residual, RMS {rms:.3g}", fontsize=9, color=model_colors([m])[m])
    for ax in axes.flat[len(models) + 1:]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel(f"coordinate of x ∈ R^{x.shape[1]}")
    against = "data" if clean is None else "noise-free g(u) of the data"
    fig.suptitle(f"Reconstructions of {p} held-out points (first seed of each model): residual = "
                 f"reconstruction − {against}, same y-scale in every residual panel (data scale: std of x = "
                 f"{float(x[:p].std()):.2f})", fontsize=10)
    _save(fig, path)


def paired_differences(results, path: str, *, show_paper: bool = True) -> None:
    """Verdicts against the paper (er_fast.app.verdicts.compare results, one or several metrics):
    per pair of the paper's rows, the mean per-seed difference Δ = paper's higher row − paper's
    lower row with its CI, coloured by verdict. Δ > 0 (right of the line) is the paper's side.
    ``show_paper``: also mark the paper's own difference (of its two ELBO means; > 0 by construction)."""
    plt = _plt()
    results = [results] if isinstance(results, dict) else list(results)
    npairs = len(results[0]["pairs"])
    fig, axes = plt.subplots(1, len(results), figsize=(5.2 * len(results) + 2.6, 0.42 * npairs + 1.9),
                             sharey=True, squeeze=False)
    labels = [f"{r['higher']} > {r['lower']}" for r in results[0]["pairs"]]
    y = np.arange(npairs)[::-1]
    for ax, res in zip(axes[0], results):
        lo = min(min(p["ci"][0] for p in res["pairs"]), 0.0)
        hi = max(max(p["ci"][1] for p in res["pairs"]), 0.0)
        if show_paper:
            hi = max(hi, max(p["paper_difference"] for p in res["pairs"]))
        span = hi - lo or 1.0
        ax.axvspan(0, hi + 0.08 * span, color="#1a9850", alpha=0.06, lw=0)
        ax.axvline(0, color="k", lw=1)
        for yi, pr in zip(y, res["pairs"]):
            col, mk = VERDICT_STYLE[pr["verdict"]]
            ax.errorbar(pr["mean"], yi, xerr=[[pr["mean"] - pr["ci"][0]], [pr["ci"][1] - pr["mean"]]], fmt=mk,
                        color=col, ms=6, capsize=3, lw=1.6)
            if show_paper:
                ax.plot(pr["paper_difference"], yi, marker="|", color="k", ms=11, mew=1.5)
        ax.set_xlim(lo - 0.08 * span, hi + 0.08 * span)
        ax.set_ylim(-0.7, npairs - 0.3)
        ax.text(0.99, 1.01, "paper's side →", transform=ax.transAxes, ha="right", va="bottom", fontsize=8,
                color="#1a9850")
        ax.text(0.01, 1.01, "← reversed", transform=ax.transAxes, ha="left", va="bottom", fontsize=8, color="#d73027")
        pct = round(100 * res["confidence"])
        ax.set_xlabel(f"mean Δ {res['metric'].upper()} per seed (nats / point), {pct}% CI")
        ax.set_title(res["summary"].split(" (")[0] + f"\n({res['metric'].upper()}, {res['n_seeds']} paired seeds)",
                     fontsize=9, pad=16)
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(y, labels, fontsize=8)
    handles = [plt.Line2D([], [], color=c, marker=m, ls="", label=v) for v, (c, m) in VERDICT_STYLE.items()]
    if show_paper:
        handles.append(plt.Line2D([], [], color="k", marker="|", ms=11, mew=1.5, ls="",
                                  label="paper's Δ\n(difference of its\nELBO means)"))
    axes[0][-1].legend(handles=handles, title="verdict", loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8,
                       frameon=False)
    fig.text(0.01, -0.02, "Each line: the paper's ordering 'A > B' (A has the higher ELBO in the paper's Table 1); "
             "Δ = A − B on the same seed.", fontsize=8, ha="left", va="top")
    _save(fig, path)


def ceiling_gap(rows: List[dict], ceiling: float, path: str, *, metric: str = "iwae",
                noise_std: Optional[float] = None, confidence: float = 0.95) -> None:
    """Per row, the gap ``metric`` − ceiling (nats / point; ≤ 0 up to noise, since the ceiling is
    the true mean log-likelihood of the same held-out points): mean over seeds with its Student-t CI,
    seeds as points."""
    from scipy import stats

    plt = _plt()
    colors = model_colors([r["model"] for r in rows])
    fig, ax = plt.subplots(figsize=(8.5, 0.5 * len(rows) + 1.8))
    rng = np.random.default_rng(0)
    y = np.arange(len(rows))[::-1]
    lo_all, hi_all = 0.0, 0.0
    for yi, r in zip(y, rows):
        gap = np.asarray(r["per_seed"][metric], np.float64) - ceiling
        n = gap.size
        mean = float(gap.mean())
        half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * gap.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0
        ax.scatter(gap, yi + rng.uniform(-0.18, 0.18, n), s=8, alpha=0.5, color=colors[r["model"]], lw=0)
        ax.errorbar(mean, yi, xerr=half, fmt="o", color="k", ms=5, capsize=4, lw=1.5, zorder=4)
        ax.annotate(f"{mean:+.2f} ± {half:.2f}", (mean, yi), xytext=(0, 7), textcoords="offset points",
                    ha="center", fontsize=7)
        lo_all, hi_all = min(lo_all, float(gap.min()), mean - half), max(hi_all, float(gap.max()), mean + half)
    span = hi_all - lo_all or 1.0
    ax.set_xlim(lo_all - 0.05 * span, hi_all + 0.05 * span)
    ax.axvline(0, color="#d73027", lw=1.2)
    sig = f", σ0 = {noise_std:g}" if noise_std is not None else ""
    ax.text(0, 1.01, f"ceiling: true log p = {ceiling:.2f}{sig}", transform=ax.get_xaxis_transform(), ha="right",
            va="bottom", fontsize=8, color="#d73027")
    ax.set_yticks(y, [r["model"] for r in rows], fontsize=8)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_xlabel(f"{metric.upper()} − ceiling (nats / point): mean over seeds, {round(100 * confidence)}% CI; "
                  "dots = seeds")
    ax.set_title(f"Gap to the true log-likelihood of the held-out points ({rows[0]['n_seeds']} seeds per row)",
                 fontsize=10, pad=16)
    ax.grid(axis="x", alpha=0.3)
    _save(fig, path)


def bench_scaling(ns: List[int], times: Dict[str, List[float]], path: str) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for name, t in times.items():
        ok = [(n, s) for n, s in zip(ns, t) if s == s]
        ax.loglog([a for a, _ in ok], [b for _, b in ok], "o-", label=name)
    # Ticks at the measured n only, as plain numbers: log-axis minor ticks crowd and collide.
    ax.set_xticks(ns, [f"{n:,}" for n in ns])
    ax.xaxis.set_minor_locator(plt.NullLocator())
    ax.set_xlabel("n = m (points per sample)")
    ax.set_ylabel("forward + backward time (s)")
    ax.set_title("mmd_imq scaling, B = 1, d = 8")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend()
    _save(fig, path)
