"""Table 1 outputs: per-model summary rows, results.json / results.csv / table.md."""
from __future__ import annotations

import csv
import io
import math
from typing import Dict, List, Sequence

from .paper import PAPER_TABLE1


def _mean_std(v: Sequence[float]) -> tuple[float, float]:
    n = len(v)
    mean = sum(v) / n
    std = math.sqrt(sum((a - mean) ** 2 for a in v) / (n - 1)) if n > 1 else 0.0
    return mean, std


def ci95_halfwidth(std: float, n: int) -> float:
    """Half-width of the 95% confidence interval of the mean (Student t, n - 1 dof)."""
    if n < 2:
        return float("nan")
    from scipy.stats import t

    return float(t.ppf(0.975, n - 1) * std / math.sqrt(n))


def summarize(model: str, description: str, per_seed: Dict[str, List]) -> dict:
    """per_seed: {"seed": [...], "elbo": [...], "iwae": [...], "active_units": [...]}"""
    elbo_mean, elbo_std = _mean_std(per_seed["elbo"])
    iwae_mean, iwae_std = _mean_std(per_seed["iwae"])
    n = len(per_seed["elbo"])
    return {
        "model": model,
        "description": description,
        "n_seeds": n,
        "elbo_mean": elbo_mean,
        "elbo_std": elbo_std,
        "elbo_ci95": ci95_halfwidth(elbo_std, n),
        "iwae_mean": iwae_mean,
        "iwae_std": iwae_std,
        "iwae_ci95": ci95_halfwidth(iwae_std, n),
        "per_seed": per_seed,
    }


def results_csv(rows: List[dict]) -> str:
    buf = io.StringIO()
    keys = ["elbo", "iwae", "active_units"]
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["model", "seed"] + keys)
    for r in rows:
        ps = r["per_seed"]
        for i, seed in enumerate(ps["seed"]):
            w.writerow([r["model"], seed] + [ps[k][i] for k in keys])
    return buf.getvalue()


def table_md(rows: List[dict], protocol: dict, ceiling: float | None = None) -> str:
    lines = [
        f"# Table 1, protocol `{protocol['name']}` (noise σ0 = {protocol['noise_std']:g}; {protocol['seeds']} seeds, "
        f"{protocol['steps']} steps, device {protocol['device']})",
        "",
        "ELBO and IWAE on the same {n} held-out points and the same K = {k} posterior samples per point "
        "(the ELBO is the mean log-weight, the IWAE the log of the mean weight, so IWAE ≥ ELBO for every "
        "seed), nats per point, mean ± std over seeds; 95% CI is the half-width for the mean. The "
        "paper's values are mean ± std over an unstated number of runs.".format(k=protocol["iwae_k"],
                                                                                n=protocol["eval_points"]),
        "",
        "| model | description | seeds | ELBO | 95% CI | IWAE | 95% CI | active units | paper ELBO |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    if ceiling is not None:
        lines.append(f"| **true log-likelihood** | the data's own density at these points, by quadrature: "
                     f"no model's IWAE can exceed it on average (the group rows bound p(x given θ(x)) instead) "
                     f"| | {ceiling:.2f} | | {ceiling:.2f} | | | |")
    for r in rows:
        paper = PAPER_TABLE1.get(r["model"])
        paper_s = f"{paper[1]:.2f} ± {paper[2]:.2f}" if paper else "—"
        au = r["per_seed"]["active_units"]
        lines.append(
            f"| `{r['model']}` | {r['description']} | {r['n_seeds']} | {r['elbo_mean']:.2f} ± {r['elbo_std']:.2f} "
            f"| ± {r['elbo_ci95']:.2f} | {r['iwae_mean']:.2f} ± {r['iwae_std']:.2f} | ± {r['iwae_ci95']:.2f} "
            f"| {sum(au) / len(au):.2f} | {paper_s} |"
        )
    return "\n".join(lines) + "\n"


def _p(p: float) -> str:
    return f"{p:.1e}" if p < 1e-3 else f"{p:.3f}"


def verdicts_md(result: dict) -> str:
    """Markdown table of er_fast.app.verdicts.compare's result: one line per pair of the paper's
    rows, oriented as the paper orders them (Δ = paper's higher row − paper's lower row, per seed)."""
    pct = round(100 * result["confidence"])
    lines = [
        f"**{result['summary']}.**",
        "",
        f"Δ = {result['metric']}(paper's higher row) − {result['metric']}(paper's lower row), per seed, "
        f"nats per point: > 0 agrees with the paper. Verdict from the {pct}% Student-t interval of the mean Δ: "
        "*reproduced* (interval above 0), *reversed* (below 0), *not resolved* (contains 0). Wilcoxon "
        "signed-rank p-values two-sided, Holm-adjusted over the pairs in parentheses.",
        "",
        f"| paper's ordering | paper Δ | mean Δ | {pct}% CI | seeds Δ > 0 / < 0 | Wilcoxon p (Holm) | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["pairs"]:
        lo, hi = r["ci"]
        lines.append(
            f"| `{r['higher']}` > `{r['lower']}` | {r['paper_difference']:+.2f} | {r['mean']:+.2f} "
            f"| [{lo:+.2f}, {hi:+.2f}] | {r['wins']} / {r['losses']} | {_p(r['wilcoxon_p'])} "
            f"({_p(r['wilcoxon_p_holm'])}) | {r['verdict']} |"
        )
    return "\n".join(lines) + "\n"
