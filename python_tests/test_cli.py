"""The er-fast command line: argument errors (and a fuzz of the parser), outputs, resume after
SIGKILL, refusal of other settings, extending a run, --dry-run, --version, torchrun."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from er_fast.app import cli

# One protocol, two models (one needs the learned f), 4 seeds in units of 2: small but complete.
TINY = ["--protocols", "paper", "--seeds", "4", "--seed-chunk", "2", "--models", "vae-gauss-1d,er-learned-1d",
        "--steps", "30", "--wae-steps", "20", "--iwae-k", "16", "--eval-points", "8", "--no-progress"]


def run_cli(*args, env=None, **kw):
    e = dict(os.environ, PYTHONWARNINGS="ignore", **(env or {}))
    return subprocess.run([sys.executable, "-m", "er_fast", *args], capture_output=True, text=True, env=e, **kw)


def per_seed(out, protocol="paper"):
    rows = json.load(open(os.path.join(out, protocol, "results.json")))["rows"]
    return {r["model"]: (r["per_seed"]["seed"], r["per_seed"]["elbo"], r["per_seed"]["iwae"]) for r in rows}


@pytest.mark.parametrize("bad", [
    ["--seeds", "0"], ["--seeds", "-3"], ["--steps", "-1"], ["--models", "vae-gauss-1d,nope"],
    ["--batch-size", "0"], ["--iwae-k", "0"], ["--workers", "0"], ["--lr", "inf"], ["--lr", "nan"],
    ["--noise-std", "nan"], ["--noise-std", "inf"], ["--wae-lambda", "nan"], ["--map-seed", str(2**70)],
    ["--models", ""], ["--protocols", "paper,bogus"], ["--protocols", ""], ["--noise-std", "0.1"],
    ["--width", "1000000"], ["--seed-chunk", "0"],
])
def test_bad_arguments_fail_before_anything_is_written(tmp_path, bad):
    out = tmp_path / "o"
    r = run_cli("table1", "--out", str(out), *bad, timeout=60)
    assert r.returncode == 2, r.stderr
    assert "error" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists()


def test_empty_out_is_refused(tmp_path):
    r = run_cli("table1", "--out", "", *TINY, timeout=60, cwd=tmp_path)
    assert r.returncode == 2 and "--out" in r.stderr
    assert os.listdir(tmp_path) == []


def test_unwritable_out_dir(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    r = run_cli("table1", "--out", str(f / "sub"), *TINY, timeout=60)
    assert r.returncode == 2 and "cannot write" in r.stderr


def test_version_and_models():
    import er_fast

    r = run_cli("--version", timeout=60)
    assert r.returncode == 0 and er_fast.__version__ in r.stdout
    r = run_cli("models", timeout=60)
    assert r.returncode == 0
    for m in ("vae-gauss-1d", "vae-gauss-2d", "er-proj-1d", "er-learned-1d", "er-learned-group-1d"):
        assert m in r.stdout


# ---------------------------------------------------------------- fuzz of the argument parser
_VALUES = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", " ", "nan", "inf", "-inf", "1e400", "0x10", "3", "0.5", "abc", "vae-gauss-1d", ",",
                     "paper", "noisy", "paper,noisy", "float16", "cuda"]),
)
_FLAGS = ["--seeds", "--models", "--steps", "--batch-size", "--lr", "--width", "--iwae-k", "--eval-points",
          "--noise-std", "--map-seed", "--wae-steps", "--wae-lambda", "--seed-chunk", "--dtype", "--workers",
          "--protocols", "--device"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(_FLAGS), _VALUES), max_size=6), st.booleans())
def test_fuzz_arguments_are_accepted_or_refused_cleanly(tmp_path, flags, quick):
    """Random and extreme values: every argument set either validates or stops with exit 2 and one
    line; nothing is written by the checks."""
    argv = ["table1", "--out", str(tmp_path / "fuzz")] + [x for f in flags for x in f] + (["--quick"] if quick else [])
    try:
        args = cli.parser().parse_args(argv)
    except SystemExit as e:
        assert e.code == 2
        return
    try:
        cli.table1_protocols(args)
    except ValueError as e:
        assert "must" in str(e) or "--" in str(e)
    assert not (tmp_path / "fuzz").exists()


# ---------------------------------------------------------------- a complete tiny run
@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("ref") / "run")
    r = run_cli("table1", "--out", out, *TINY, "--workers", "1", timeout=600)
    assert r.returncode == 0, r.stderr
    return out


def test_outputs(reference_run):
    out = reference_run
    for f in ("table.md", "summary.json"):
        assert os.path.getsize(os.path.join(out, f)) > 0, f
    for f in ("results.json", "results.csv", "table.md", "protocol.json", "embedding.safetensors", "embedding.json",
              "embedding.png", "elbo_per_model.png", "training_curves.png", "reconstructions.png"):
        assert os.path.getsize(os.path.join(out, "paper", f)) > 0, f
    res = json.load(open(os.path.join(out, "paper", "results.json")))
    assert {"torch", "python", "er_fast", "device", "cpu_isa"} <= set(res["environment"])
    assert res["partial"] is False and res["units_done"] == res["units_total"] == 4
    for row in res["rows"]:
        assert row["n_seeds"] == 4 and len(row["per_seed"]["elbo"]) == 4
        for k in ("elbo_mean", "elbo_std", "elbo_ci95", "iwae_mean", "iwae_std", "iwae_ci95"):
            assert row[k] == row[k], k  # not NaN
        # ELBO and IWAE on the same points and samples: IWAE >= ELBO for every seed
        assert all(i >= e for i, e in zip(row["per_seed"]["iwae"], row["per_seed"]["elbo"]))
    csv_lines = open(os.path.join(out, "paper", "results.csv")).read().splitlines()
    assert len(csv_lines) == 1 + 2 * 4
    assert "183.98" in open(os.path.join(out, "paper", "table.md")).read()  # the paper's value beside ours


def test_rerun_resumes_and_other_arguments_are_refused(reference_run):
    before = per_seed(reference_run)
    r = run_cli("table1", "--out", reference_run, *TINY, timeout=300)
    assert r.returncode == 0, r.stderr
    assert per_seed(reference_run) == before
    r = run_cli("table1", "--out", reference_run, *TINY, "--lr", "0.01", timeout=60)
    assert r.returncode == 2 and "other settings" in r.stderr and "'lr'" in r.stderr


def test_quick_resumed_with_the_same_settings_spelled_out(tmp_path):
    """--quick is a preset, not a setting: the same numbers spelled out resume the same run."""
    out = str(tmp_path / "q")
    quick = ["--protocols", "paper", "--models", "vae-gauss-1d", "--no-progress", "--workers", "1"]
    r = run_cli("table1", "--out", out, "--quick", *quick, "--dry-run", timeout=300)
    assert r.returncode == 0, r.stderr
    from er_fast.app.protocol import QUICK, build_protocols

    spelled = [x for k, val in QUICK.items() for x in (cli.flag_of(k), str(val))]
    a = build_protocols(["paper"], True, models=("vae-gauss-1d",))[0]
    b = cli.table1_protocols(cli.parser().parse_args(["table1", "--out", out, *quick, *spelled]))[0]
    assert a == b


def test_extend_a_run_with_more_seeds(reference_run, tmp_path):
    """A finished 4-seed run continued with --seeds 6 keeps the first 4 seeds' units (same files)
    and adds the rest; the result equals a 6-seed run from scratch for those seeds."""
    import shutil

    out = str(tmp_path / "ext")
    shutil.copytree(reference_run, out)
    unit = os.path.join(out, "paper", "units", "vae-gauss-1d", "seeds-00000-00001.json")
    mtime = os.stat(unit).st_mtime_ns
    args = [x if x != "4" else "6" for x in TINY]
    r = run_cli("table1", "--out", out, *args, timeout=600)
    assert r.returncode == 0, r.stderr
    assert os.stat(unit).st_mtime_ns == mtime
    grown = per_seed(out)
    ref = per_seed(reference_run)
    for m, (seeds, elbo, iwae) in grown.items():
        assert seeds == list(range(6))
        assert (elbo[:4], iwae[:4]) == (ref[m][1], ref[m][2])


def test_dry_run_writes_nothing(tmp_path):
    out = tmp_path / "dry"
    r = run_cli("table1", "--out", str(out), *TINY, "--dry-run", timeout=300)
    assert r.returncode == 0, r.stderr
    assert "units" in r.stdout and "memory" in r.stdout and "min" in r.stdout
    assert not out.exists()


def test_sigkill_then_resume_equals_uninterrupted(reference_run, tmp_path):
    out = str(tmp_path / "killed")
    e = dict(os.environ, PYTHONWARNINGS="ignore")
    p = subprocess.Popen([sys.executable, "-m", "er_fast", "table1", "--out", out, *TINY, "--workers", "1"],
                         env=e, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    units = os.path.join(out, "paper", "units")
    deadline = time.time() + 300
    while time.time() < deadline:  # kill once the first unit is written, mid-way through the next
        if os.path.isdir(units) and any(f.endswith(".json") for _, _, fs in os.walk(units) for f in fs):
            break
        time.sleep(0.05)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    assert not os.path.exists(os.path.join(out, "paper", "results.json"))
    r = run_cli("table1", "--out", out, *TINY, timeout=600)
    assert r.returncode == 0, r.stderr
    assert per_seed(out) == per_seed(reference_run)


def test_torchrun_two_processes_equals_single(reference_run, tmp_path):
    out = str(tmp_path / "dist")
    e = dict(os.environ, PYTHONWARNINGS="ignore")
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                        "-m", "er_fast", "table1", "--out", out, *TINY], capture_output=True, text=True, env=e,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert per_seed(out) == per_seed(reference_run)


@pytest.mark.parametrize("kind", ["file-parent", "empty"])
def test_bench_bad_out_is_refused_before_timing(tmp_path, kind):
    f = tmp_path / "file"
    f.write_text("x")
    out = str(f / "sub") if kind == "file-parent" else ""
    r = run_cli("bench", "--out", out, "--quick", timeout=60, cwd=tmp_path)
    assert r.returncode == 2 and "--out" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert sorted(os.listdir(tmp_path)) == ["file"]


def test_sweep_runs_each_budget_and_tabulates(tmp_path):
    """`er-fast sweep`: one complete table1 run per budget multiplier, side by side in sweep.md."""
    out = tmp_path / "s"
    r = run_cli("sweep", "--out", str(out), *TINY, "--multipliers", "1,2", timeout=600)
    assert r.returncode == 0, r.stderr
    for steps in (30, 60):
        res = json.load(open(out / f"steps-{steps}" / "paper" / "results.json"))
        assert res["protocol"]["steps"] == steps
    text = (out / "sweep.md").read_text()
    assert "30" in text and "60" in text and "vae-gauss-1d" in text
    bad = run_cli("sweep", "--out", str(tmp_path / "b"), *TINY, "--multipliers", "0", timeout=60)
    assert bad.returncode == 2 and "--multipliers" in bad.stderr


def test_two_protocols_run_in_one_pool_and_learn_f_once(reference_run, tmp_path):
    """paper + noisy in one invocation with 2 workers: the protocols share one worker pool and one
    f (same WAE settings: learned once, copied to the other directory), and the paper protocol's
    numbers equal the paper-only reference run's, seed for seed."""
    out = str(tmp_path / "both")
    args = [a for a in TINY[2:] if a != "--no-progress"]  # progress off a terminal: plain log lines
    r = run_cli("table1", "--out", out, "--protocols", "paper,noisy", *args, "--workers", "2", timeout=900)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("embedding: trained") == 1, r.stderr
    assert r.stderr.count("embedding: the same WAE settings") == 1, r.stderr
    emb = [open(os.path.join(out, p, "embedding.safetensors"), "rb").read() for p in ("paper", "noisy")]
    assert emb[0] == emb[1] == open(os.path.join(reference_run, "paper", "embedding.safetensors"), "rb").read()
    assert per_seed(out, "paper") == per_seed(reference_run)
    res = json.load(open(os.path.join(out, "noisy", "results.json")))
    assert res["partial"] is False and res["units_done"] == res["units_total"] == 4


def test_ceiling_is_computed_on_the_evaluated_points(tmp_path):
    """The noisy protocol's ceiling must be log p at the very points the models are scored on. The
    test points depend on the data's dtype (it decides how the generator's draws are consumed); the
    ceiling was once computed on a float64 copy of the data set, i.e. on other points."""
    import torch
    from er_fast.vae import DataConfig, ToyData
    from er_fast.vae.ceiling import true_log_likelihood

    out = tmp_path / "n"
    r = run_cli("table1", "--out", str(out), "--protocols", "noisy", *TINY[2:], "--workers", "1", timeout=600)
    assert r.returncode == 0, r.stderr
    res = json.load(open(out / "noisy" / "results.json"))
    p = res["protocol"]
    assert p["dtype"] == "float32"
    # the points evaluate() saw: the units' float32 data set
    data = ToyData(DataConfig(map_seed=p["map_seed"], noise_std=p["noise_std"], test_size=p["eval_points"],
                              test_seed=p["test_seed"]), dtype=torch.float32)
    want, _ = true_log_likelihood(data, data.x_test[: p["eval_points"]])
    got = res["ceiling"]["per_point"]
    assert len(got) == p["eval_points"]
    assert max(abs(a - b) for a, b in zip(got, want)) < 1e-6
