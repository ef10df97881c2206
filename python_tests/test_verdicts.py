"""Paired per-seed verdicts on the paper's Table 1 orderings, on synthetic data with known answers."""
import json

import numpy as np
import pytest
from scipy import stats

from er_fast.app import verdicts
from er_fast.app.paper import PAPER_TABLE1
from er_fast.app.report import verdicts_md

SEEDS = list(range(30))


def _synthetic():
    """Paper's order: vae-gauss-2d > er-learned-group-1d > er-learned-1d > er-proj-1d > vae-gauss-1d.
    Here: 2d and group clearly above the rest (reproduced), vae-gauss-1d clearly on top of the three
    below it and of the two above it (reversed), learned vs proj an exact tie (mean difference 0).
    A large per-seed offset shared by every row (common random numbers) would swamp unpaired tests."""
    rng = np.random.default_rng(0)
    common = rng.normal(0, 30, len(SEEDS))
    learned = common + rng.normal(0, 1, len(SEEDS))
    values = {
        "vae-gauss-2d": common + 200 + rng.normal(0, 1, len(SEEDS)),
        "er-learned-group-1d": common + 100 + rng.normal(0, 1, len(SEEDS)),
        "er-learned-1d": learned,
        "er-proj-1d": learned + np.where(np.arange(len(SEEDS)) % 2 == 0, 1.0, -1.0),  # Δ = ±1, mean 0
        "vae-gauss-1d": common + 300 + rng.normal(0, 1, len(SEEDS)),
    }
    return {m: list(SEEDS) for m in values}, {m: v.tolist() for m, v in values.items()}


def _pair(result, a, b):
    (r,) = [r for r in result["pairs"] if {r["higher"], r["lower"]} == {a, b}]
    return r


def test_known_answers():
    seeds, values = _synthetic()
    res = verdicts.compare(seeds, values)
    assert len(res["pairs"]) == 10 and res["n_seeds"] == 30
    for r in res["pairs"]:
        assert PAPER_TABLE1[r["higher"]][1] > PAPER_TABLE1[r["lower"]][1]
    assert _pair(res, "vae-gauss-2d", "er-learned-group-1d")["verdict"] == "reproduced"
    assert _pair(res, "er-learned-group-1d", "er-proj-1d")["verdict"] == "reproduced"
    assert _pair(res, "er-learned-1d", "er-proj-1d")["verdict"] == "not resolved"
    for other in ("er-learned-1d", "er-proj-1d", "er-learned-group-1d", "vae-gauss-2d"):
        r = _pair(res, other, "vae-gauss-1d")
        assert r["higher"] == other and r["verdict"] == "reversed" and r["mean"] < 0
    assert res["counts"] == {"reproduced": 5, "reversed": 4, "not resolved": 1}
    assert res["summary"].startswith("5 of 10 of the paper's orderings reproduced")
    json.dumps(res)  # plain JSON


def test_numbers_match_scipy():
    seeds, values = _synthetic()
    r = _pair(verdicts.compare(seeds, values), "vae-gauss-2d", "er-learned-group-1d")
    d = np.array(values["vae-gauss-2d"]) - np.array(values["er-learned-group-1d"])
    lo, hi = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
    assert r["mean"] == pytest.approx(d.mean()) and r["ci"] == pytest.approx([lo, hi])
    assert r["wilcoxon_p"] == pytest.approx(stats.wilcoxon(d).pvalue)
    assert r["wins"] == int((d > 0).sum())
    # unpaired, the shared per-seed offset (std 30) would hide this 100-nat gap's precision
    assert hi - lo < 1.5


def test_holm_adjustment():
    res = verdicts.compare(*_synthetic())
    for r in res["pairs"]:
        assert r["wilcoxon_p"] <= r["wilcoxon_p_holm"] <= 1
    order = sorted(res["pairs"], key=lambda r: r["wilcoxon_p"])
    assert [r["wilcoxon_p_holm"] for r in order] == sorted(r["wilcoxon_p_holm"] for r in order)


def test_seed_order_does_not_matter_but_pairing_does():
    seeds, values = _synthetic()
    perm = np.random.default_rng(1).permutation(len(SEEDS))
    seeds2 = dict(seeds, **{"er-proj-1d": [SEEDS[i] for i in perm]})
    values2 = dict(values, **{"er-proj-1d": [values["er-proj-1d"][i] for i in perm]})
    assert verdicts.compare(seeds2, values2) == verdicts.compare(seeds, values)


def test_misaligned_or_missing_seeds_are_errors():
    seeds, values = _synthetic()
    with pytest.raises(ValueError, match=r"'er-proj-1d' must equal the seeds of .*missing \[3\], extra \[99\]"):
        verdicts.compare(dict(seeds, **{"er-proj-1d": [s if s != 3 else 99 for s in SEEDS]}), values)
    with pytest.raises(ValueError, match=r"values of 'er-proj-1d' must be one number per seed \(29 seeds\)"):
        verdicts.compare(dict(seeds, **{"er-proj-1d": SEEDS[:-1]}), values)
    with pytest.raises(ValueError, match=r"must be distinct, got repeated seeds \[0\]"):
        verdicts.compare(dict(seeds, **{"vae-gauss-1d": [0] + SEEDS[:-1]}), values)
    with pytest.raises(ValueError, match=r"must be finite, got non-finite values at seeds \[5\]"):
        bad = list(values["er-learned-1d"])
        bad[5] = float("nan")
        verdicts.compare(seeds, dict(values, **{"er-learned-1d": bad}))
    with pytest.raises(KeyError, match="include model 'vae-gauss-2d'"):
        verdicts.compare({m: s for m, s in seeds.items() if m != "vae-gauss-2d"}, values)
    with pytest.raises(ValueError, match="at least 2"):
        verdicts.compare({m: [0] for m in seeds}, {m: [1.0] for m in seeds})
    with pytest.raises(ValueError, match="rows must be models of the paper's Table 1"):
        verdicts.compare(seeds, values, rows=["vae-gauss-1d", "vae-beta-1d"])


def test_identical_rows_are_a_tie_and_rows_subset():
    seeds, values = _synthetic()
    values = dict(values, **{"er-proj-1d": values["er-learned-1d"]})
    res = verdicts.compare(seeds, values, rows=["er-proj-1d", "er-learned-1d"])
    (r,) = res["pairs"]
    assert (r["higher"], r["lower"]) == ("er-learned-1d", "er-proj-1d")
    assert r["verdict"] == "not resolved" and r["wilcoxon_p"] == 1.0 and r["ci"] == [0.0, 0.0]
    assert res["summary"].startswith("0 of 1 ")


def test_compare_rows_and_markdown():
    seeds, values = _synthetic()
    rows = [{"model": m, "per_seed": {"seed": seeds[m], "iwae": values[m]}} for m in values]
    rows.append({"model": "vae-beta-1d", "per_seed": {"seed": [0], "iwae": [0.0]}})  # not a paper row: ignored
    res = verdicts.compare_rows(rows, "iwae")
    assert res == verdicts.compare(seeds, values, metric="iwae")
    with pytest.raises(KeyError, match="metric must be a per-seed field"):
        verdicts.compare_rows(rows, "elbo")
    md = verdicts_md(res)
    assert md.count("\n| `") == 10 and res["summary"] in md and "reversed" in md
