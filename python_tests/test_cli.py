"""The er-fast command line: argument errors, outputs, resume after SIGKILL, refusal, torchrun."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

TINY = ["--seeds", "4", "--chunk", "1", "--models", "vae-gauss-1d,er-learned-1d", "--steps", "30",
        "--wae-steps", "20", "--iwae-k", "16", "--iwae-points", "8", "--test-points", "64", "--no-progress"]


def run_cli(*args, env=None, **kw):
    e = dict(os.environ, PYTHONWARNINGS="ignore", **(env or {}))
    return subprocess.run([sys.executable, "-m", "er_fast", *args], capture_output=True, text=True, env=e, **kw)


def per_seed(out):
    rows = json.load(open(os.path.join(out, "results.json")))["rows"]
    return {r["model"]: (r["per_seed"]["seed"], r["per_seed"]["elbo"], r["per_seed"]["iwae"]) for r in rows}


@pytest.mark.parametrize("bad", [
    ["--seeds", "0"], ["--seeds", "-3"], ["--steps", "-1"], ["--models", "vae-gauss-1d,nope"],
    ["--batch-size", "0"], ["--iwae-k", "0"], ["--workers", "0"],
])
def test_bad_arguments_fail_before_training(tmp_path, bad):
    r = run_cli("table1", "--out", str(tmp_path / "o"), *bad, timeout=60)
    assert r.returncode == 2
    assert "error" in r.stderr
    assert not (tmp_path / "o" / "units").exists() or not any((tmp_path / "o" / "units").iterdir())


def test_unwritable_out_dir(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    r = run_cli("table1", "--out", str(f / "sub"), *TINY, timeout=60)
    assert r.returncode == 2 and "cannot write" in r.stderr


def test_models_lists_every_id():
    r = run_cli("models", timeout=60)
    assert r.returncode == 0
    for m in ("vae-gauss-1d", "vae-gauss-2d", "er-proj-1d", "er-learned-1d", "er-learned-group-1d"):
        assert m in r.stdout


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("ref") / "run")
    r = run_cli("table1", "--out", out, *TINY, "--workers", "1", timeout=600)
    assert r.returncode == 0, r.stderr
    return out


def test_outputs(reference_run):
    out = reference_run
    for f in ("results.json", "results.csv", "table.md", "protocol.json", "embedding.safetensors",
              "embedding.png", "elbo_per_model.png", "training_curves.png", "reconstructions.png"):
        assert os.path.getsize(os.path.join(out, f)) > 0, f
    res = json.load(open(os.path.join(out, "results.json")))
    assert {"torch", "python", "er_fast", "device"} <= set(res["environment"])
    for row in res["rows"]:
        assert row["n_seeds"] == 4 and len(row["per_seed"]["elbo"]) == 4
        for k in ("elbo_mean", "elbo_std", "elbo_ci95", "iwae_mean", "iwae_std"):
            assert row[k] == row[k], k  # not NaN
    csv_lines = open(os.path.join(out, "results.csv")).read().splitlines()
    assert len(csv_lines) == 1 + 2 * 4
    assert "183.98" in open(os.path.join(out, "table.md")).read()  # the paper's value beside ours


def test_rerun_resumes_and_other_arguments_are_refused(reference_run):
    before = per_seed(reference_run)
    r = run_cli("table1", "--out", reference_run, *TINY, timeout=300)
    assert r.returncode == 0, r.stderr
    assert per_seed(reference_run) == before
    r = run_cli("table1", "--out", reference_run, *TINY[:-1], "--lr", "0.01", "--no-progress", timeout=60)
    assert r.returncode == 2 and "other settings" in r.stderr


def test_sigkill_then_resume_equals_uninterrupted(reference_run, tmp_path):
    out = str(tmp_path / "killed")
    e = dict(os.environ, PYTHONWARNINGS="ignore")
    p = subprocess.Popen([sys.executable, "-m", "er_fast", "table1", "--out", out, *TINY, "--workers", "1"],
                         env=e, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    units = os.path.join(out, "units")
    deadline = time.time() + 300
    while time.time() < deadline:  # kill once the first unit is written, mid-way through the next
        if os.path.isdir(units) and any(f.endswith(".json") for _, _, fs in os.walk(units) for f in fs):
            break
        time.sleep(0.05)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    assert not os.path.exists(os.path.join(out, "results.json"))
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
