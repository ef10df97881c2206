"""Smoke tests: every plot function writes a real PNG from synthetic inputs (the pictures themselves
are checked by eye; here: it runs, the file is a PNG of plausible size and dimensions)."""
import struct

import numpy as np
import pytest

from er_fast.app import plots, verdicts
from er_fast.app.paper import PAPER_TABLE1

MODELS = ["vae-gauss-1d", "vae-gauss-2d", "er-proj-1d", "er-learned-1d", "er-learned-group-1d", "extra-model"]


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    w, h = struct.unpack(">II", data[16:24])
    return len(data), w, h


def _check(path, min_bytes=15_000):
    n, w, h = _png_size(path)
    assert n > min_bytes and 300 < w < 4000 and 200 < h < 4000, (n, w, h)


def _rows(n_seeds=12):
    rng = np.random.default_rng(0)
    common = rng.normal(0, 20, n_seeds)
    rows = []
    for i, m in enumerate(MODELS):
        elbo = common + 300 + 10 * i + rng.normal(0, 5, n_seeds)
        rows.append({"model": m, "n_seeds": n_seeds, "per_seed": {
            "seed": list(range(n_seeds)), "elbo": elbo.tolist(), "iwae": (elbo + 5).tolist(),
            "active_units": [1] * n_seeds, "sigma": [0.01] * n_seeds}})
    return rows


def test_elbo_per_model(tmp_path):
    plots.elbo_per_model(_rows(), str(tmp_path / "a.png"))
    _check(tmp_path / "a.png")
    plots.elbo_per_model(_rows(), str(tmp_path / "b.png"), metric="iwae")
    _check(tmp_path / "b.png")


def test_training_curves(tmp_path):
    rng = np.random.default_rng(1)
    steps = np.arange(0, 1001, 20)
    shape = 200 * (1 - np.exp(-steps / 150.0)) - 250 * (steps == 0)  # a far-lower first point
    curves = {m: shape + 5 * i + rng.normal(0, 3, (7, steps.size)) for i, m in enumerate(MODELS)}
    plots.training_curves(curves, steps, str(tmp_path / "c.png"))
    _check(tmp_path / "c.png")
    lo, hi = plots.curve_ylim(curves, steps)
    later = np.concatenate([c[:, 1:] for c in curves.values()])
    assert lo <= np.quantile(later, 0.1, axis=0).min() and hi >= np.quantile(later, 0.9, axis=0).max()


def test_reconstructions(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.normal(0, 0.2, (4, 100))
    recon = {m: x + rng.normal(0, 0.01 * (i + 1), x.shape) for i, m in enumerate(MODELS)}
    plots.reconstructions(x, recon, str(tmp_path / "r.png"))
    _check(tmp_path / "r.png")
    plots.reconstructions(x + rng.normal(0, 0.03, x.shape), recon, str(tmp_path / "n.png"), clean=x)
    _check(tmp_path / "n.png")


def test_embedding(tmp_path):
    t = np.linspace(0, 1, 201)
    f = np.stack([np.cos(2 * np.pi * t), -np.sin(2 * np.pi * t)], 1) * (1 + 0.1 * np.sin(6 * np.pi * t))[:, None]
    plots.embedding(t, f, str(tmp_path / "e.png"), "test f")
    _check(tmp_path / "e.png")


@pytest.mark.parametrize("both", [False, True])
def test_paired_differences(tmp_path, both):
    rows = _rows()
    res = verdicts.compare_rows(rows, "elbo")
    assert {p["verdict"] for p in res["pairs"]} >= {"reproduced", "reversed"}  # several styles drawn
    plots.paired_differences([res, verdicts.compare_rows(rows, "iwae")] if both else res, str(tmp_path / "p.png"))
    _check(tmp_path / "p.png")


def test_ceiling_gap(tmp_path):
    rows = _rows()
    plots.ceiling_gap(rows, 400.0, str(tmp_path / "g.png"), noise_std=0.05)
    _check(tmp_path / "g.png")


def test_bench_scaling(tmp_path):
    plots.bench_scaling([64, 128, 256], {"a": [1e-3, 2e-3, float("nan")], "b": [2e-3, 5e-3, 1e-2]},
                        str(tmp_path / "s.png"))
    _check(tmp_path / "s.png", min_bytes=10_000)


def test_every_model_keeps_its_colour():
    a = plots.model_colors(["er-proj-1d", "vae-gauss-1d"])
    b = plots.model_colors(["vae-gauss-1d", "er-proj-1d", "extra-model"])
    assert a["er-proj-1d"] == b["er-proj-1d"] and a["vae-gauss-1d"] == b["vae-gauss-1d"]
    assert len(set(plots.model_colors(list(PAPER_TABLE1)).values())) == len(PAPER_TABLE1)
