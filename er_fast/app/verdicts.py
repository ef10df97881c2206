"""Paired comparisons of Table 1 rows, seed by seed, against the orderings the paper reports.

Every seed sees the same data stream and test set in every row (common random numbers), so two rows
are compared through their per-seed differences, not through two independent means: the spread
shared by both rows (an unlucky data stream) cancels.

For each of the 10 pairs among the paper's five rows, oriented so that ``higher`` is the row with
the larger ELBO in the paper's Table 1, with d_s = value(higher, s) − value(lower, s):

* ``mean`` and the Student-t ``ci`` (default 95%) of the mean of d: the verdict is ``reproduced``
  when the interval lies above 0 (the paper's side), ``reversed`` when it lies below 0, else
  ``not resolved``;
* ``wilcoxon_p``: two-sided Wilcoxon signed-rank p-value of d (no normality assumption; the CI is
  what decides), and ``wilcoxon_p_holm``, Holm-adjusted over the 10 pairs (10 tests at 5% each
  would expect half a false verdict under no differences at all).

Pure functions on plain Python / numpy inputs, returning JSON-able dicts.
"""
from __future__ import annotations

import itertools
import math
from typing import Dict, Mapping, Optional, Sequence

import numpy as np

from ..util.validation import fail
from .paper import PAPER_TABLE1

VERDICTS = ("reproduced", "reversed", "not resolved")


def paper_pairs(rows: Optional[Sequence[str]] = None) -> list[tuple[str, str]]:
    """(higher, lower) pairs of the paper's rows, higher = the larger ELBO in the paper's Table 1."""
    rows = list(PAPER_TABLE1) if rows is None else list(rows)
    for r in rows:
        if r not in PAPER_TABLE1:
            fail("rows", "be models of the paper's Table 1 (" + ", ".join(PAPER_TABLE1) + ")", repr(r))
    pairs = []
    for a, b in itertools.combinations(rows, 2):
        pairs.append((a, b) if PAPER_TABLE1[a][1] >= PAPER_TABLE1[b][1] else (b, a))
    return pairs


def align(seeds: Mapping[str, Sequence[int]], values: Mapping[str, Sequence[float]],
          models: Sequence[str]) -> tuple[list[int], Dict[str, np.ndarray]]:
    """The per-seed values of ``models`` as float64 arrays in ONE seed order (sorted seeds).

    Every model must have exactly the same set of seeds, each once, one finite value per seed:
    comparing seed s of one row with seed s' of another would break the pairing, so a mismatch is
    an error naming the seeds, never silently dropped."""
    ref = None
    out = {}
    for m in models:
        if m not in seeds or m not in values:
            fail("per-seed results", f"include model {m!r}", "models " + ", ".join(sorted(set(seeds) & set(values))),
                 KeyError)
        s, v = [int(x) for x in seeds[m]], np.asarray(values[m], dtype=np.float64)
        if v.ndim != 1 or len(s) != v.size:
            fail(f"values of {m!r}", f"be one number per seed ({len(s)} seeds)", f"shape {v.shape}")
        if len(set(s)) != len(s):
            dup = sorted({x for x in s if s.count(x) > 1})
            fail(f"seeds of {m!r}", "be distinct", f"repeated seeds {dup}")
        bad = [s[i] for i in np.flatnonzero(~np.isfinite(v))]
        if bad:
            fail(f"values of {m!r}", "be finite", f"non-finite values at seeds {bad[:10]}")
        if ref is None:
            ref_model, ref = m, sorted(s)
        elif sorted(s) != ref:
            missing, extra = sorted(set(ref) - set(s)), sorted(set(s) - set(ref))
            fail(f"seeds of {m!r}", f"equal the seeds of {ref_model!r} (rows are paired seed by seed)",
                 f"missing {missing[:10]}{' …' if len(missing) > 10 else ''}, "
                 f"extra {extra[:10]}{' …' if len(extra) > 10 else ''}")
        order = np.argsort(s, kind="stable")
        out[m] = v[order]
    return ref, out


def paired(higher: np.ndarray, lower: np.ndarray, confidence: float = 0.95) -> dict:
    """Statistics of d = higher − lower (two aligned arrays of n ≥ 2 seeds)."""
    from scipy import stats

    d = np.asarray(higher, np.float64) - np.asarray(lower, np.float64)
    n = d.size
    if n < 2:
        fail("number of seeds", "be at least 2 for a confidence interval", n)
    mean, std = float(d.mean()), float(d.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * std / math.sqrt(n))
    lo, hi = mean - half, mean + half
    if np.all(d == 0):
        p = 1.0  # scipy refuses all-zero differences; nothing distinguishes the rows
    else:
        p = float(stats.wilcoxon(d, alternative="two-sided").pvalue)
    verdict = "reproduced" if lo > 0 else "reversed" if hi < 0 else "not resolved"
    return {"n": n, "mean": mean, "std": std, "ci": [lo, hi], "wins": int((d > 0).sum()),
            "losses": int((d < 0).sum()), "wilcoxon_p": p, "verdict": verdict}


def _holm(p: Sequence[float]) -> list[float]:
    order = np.argsort(p)
    m, out, running = len(p), [0.0] * len(p), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def compare(seeds: Mapping[str, Sequence[int]], values: Mapping[str, Sequence[float]], *, metric: str = "elbo",
            confidence: float = 0.95, rows: Optional[Sequence[str]] = None) -> dict:
    """Verdicts on the paper's orderings of ``rows`` (default: its five rows) from per-model seeds
    and values ({model: [...]}, aligned by seed id). Returns a JSON-able dict:
    ``metric``, ``confidence``, ``n_seeds``, ``pairs`` (one dict per pair: higher, lower, paper
    values and difference, and the fields of ``paired``, plus wilcoxon_p_holm), ``counts`` (per
    verdict) and ``summary`` ("k of 10 of the paper's orderings reproduced")."""
    if not (0 < confidence < 1):
        fail("confidence", "lie in (0, 1)", confidence)
    pairs = paper_pairs(rows)
    models = list(dict.fromkeys(m for p in pairs for m in p))
    seed_ids, v = align(seeds, values, models)
    out = []
    for hi_m, lo_m in pairs:
        r = {"higher": hi_m, "lower": lo_m, "paper_higher": PAPER_TABLE1[hi_m][1],
             "paper_lower": PAPER_TABLE1[lo_m][1],
             "paper_difference": PAPER_TABLE1[hi_m][1] - PAPER_TABLE1[lo_m][1]}
        r.update(paired(v[hi_m], v[lo_m], confidence))
        out.append(r)
    for r, ph in zip(out, _holm([r["wilcoxon_p"] for r in out])):
        r["wilcoxon_p_holm"] = ph
    counts = {k: sum(r["verdict"] == k for r in out) for k in VERDICTS}
    return {
        "metric": metric, "confidence": confidence, "n_seeds": len(seed_ids), "pairs": out, "counts": counts,
        "summary": f"{counts['reproduced']} of {len(out)} of the paper's orderings reproduced "
                   f"({counts['reversed']} reversed, {counts['not resolved']} not resolved; "
                   f"{metric}, {round(100 * confidence)}% paired CIs over {len(seed_ids)} seeds)",
    }


def compare_rows(rows: Sequence[Mapping], metric: str = "elbo", **kw) -> dict:
    """``compare`` on the ``rows`` of a results.json (each with ``model`` and ``per_seed``)."""
    seeds = {r["model"]: r["per_seed"]["seed"] for r in rows}
    try:
        values = {r["model"]: r["per_seed"][metric] for r in rows}
    except KeyError:
        fail("metric", "be a per-seed field of every row (e.g. 'elbo', 'iwae')", repr(metric), KeyError)
    return compare(seeds, values, metric=metric, **kw)
