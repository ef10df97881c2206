"""Run directories that cannot be fooled, and processes that stop together: hostile files built
here (truncated, garbage, edited, copied, symlinked), a second run on a locked directory, real
signals (SIGINT twice, SIGTERM, SIGKILL of the parent with worker processes)."""
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from test_cli import TINY, per_seed, run_cli


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("ref") / "run")
    r = run_cli("table1", "--out", out, *TINY, "--workers", "1", timeout=600)
    assert r.returncode == 0, r.stderr
    return out


def _copy(reference_run, tmp_path, name="run"):
    out = str(tmp_path / name)
    shutil.copytree(reference_run, out, symlinks=True)
    for f in ("results.json", "table.md"):
        os.unlink(os.path.join(out, "paper", f))
    return out


UNIT = os.path.join("paper", "units", "vae-gauss-1d", "seeds-00002-00003")
OTHER = os.path.join("paper", "units", "er-learned-1d", "seeds-00002-00003")


def _edit_elbo(path):
    rec = json.load(open(path))
    rec["result"]["elbo"][0] = 1e9
    json.dump(rec, open(path, "w"))


def _relabel_seeds(path):
    rec = json.load(open(path))
    rec["seeds"] = [7, 8]
    json.dump(rec, open(path, "w"))


def _truncate(path):
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])


HOSTILE = {
    "truncated": lambda out: _truncate(os.path.join(out, UNIT + ".json")),
    "garbage": lambda out: open(os.path.join(out, UNIT + ".json"), "wb").write(os.urandom(300)),
    "empty-object": lambda out: open(os.path.join(out, UNIT + ".json"), "w").write("{}"),
    "directory": lambda out: (os.unlink(os.path.join(out, UNIT + ".json")), os.mkdir(os.path.join(out, UNIT + ".json"))),
    "edited-elbo": lambda out: _edit_elbo(os.path.join(out, UNIT + ".json")),
    "relabelled-seeds": lambda out: _relabel_seeds(os.path.join(out, UNIT + ".json")),
    "other-model-copied": lambda out: (shutil.copy(os.path.join(out, OTHER + ".json"), os.path.join(out, UNIT + ".json")),
                                       shutil.copy(os.path.join(out, OTHER + ".safetensors"),
                                                   os.path.join(out, UNIT + ".safetensors"))),
    "checkpoint-truncated": lambda out: _truncate(os.path.join(out, UNIT + ".safetensors")),
    "checkpoint-deleted": lambda out: os.unlink(os.path.join(out, UNIT + ".safetensors")),
    "embedding-corrupted": lambda out: _truncate(os.path.join(out, "paper", "embedding.safetensors")),
    "embedding-record-deleted": lambda out: os.unlink(os.path.join(out, "paper", "embedding.json")),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_damaged_files_are_reported_and_redone_never_merged(reference_run, tmp_path, case):
    out = _copy(reference_run, tmp_path)
    HOSTILE[case](out)
    r = run_cli("table1", "--out", out, *TINY[:-1], "--workers", "1", timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    assert "retraining" in r.stderr
    assert per_seed(out) == per_seed(reference_run)


def test_settings_are_checked_per_unit_even_without_protocol_json(reference_run, tmp_path):
    """protocol.json deleted and the run resumed with other settings: every unit is retrained
    (each carries the hash of its settings), so results.json cannot claim settings the units lack."""
    out = _copy(reference_run, tmp_path)
    os.unlink(os.path.join(out, "paper", "protocol.json"))
    args = [x if x != "30" else "40" for x in TINY]  # --steps 40
    r = run_cli("table1", "--out", out, *args[:-1], "--workers", "1", timeout=600)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("made with other settings (settings_sha256 differs), retraining") == 4
    res = json.load(open(os.path.join(out, "paper", "results.json")))
    assert res["protocol"]["steps"] == 40
    assert per_seed(out) != per_seed(reference_run)  # retrained, not reused


def test_corrupted_protocol_json_gives_the_command_that_fixes_it(reference_run, tmp_path):
    out = _copy(reference_run, tmp_path)
    open(os.path.join(out, "paper", "protocol.json"), "w").write("{not json")
    r = run_cli("table1", "--out", out, *TINY, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "rm " in r.stderr and "protocol.json" in r.stderr
    # following the advice works
    os.unlink(os.path.join(out, "paper", "protocol.json"))
    r = run_cli("table1", "--out", out, *TINY, timeout=600)
    assert r.returncode == 0, r.stderr
    assert per_seed(out) == per_seed(reference_run)


def test_a_second_run_on_a_locked_directory_stops(reference_run, tmp_path):
    out = _copy(reference_run, tmp_path)
    fd = os.open(os.path.join(out, ".lock"), os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        r = run_cli("table1", "--out", out, *TINY, timeout=60)
    finally:
        os.close(fd)
    assert r.returncode == 2 and "in use" in r.stderr


def test_no_write_follows_a_symlink(reference_run, tmp_path):
    out = _copy(reference_run, tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    for planted in (".write-probe", os.path.join("paper", ".write-probe"), UNIT + ".json", "table.md",
                    os.path.join("paper", "results.json")):
        p = os.path.join(out, planted)
        if os.path.lexists(p):
            os.unlink(p)
        os.symlink(victim, p)
    r = run_cli("table1", "--out", out, *TINY, "--workers", "1", timeout=600)
    assert r.returncode == 0, r.stderr
    assert victim.read_text() == "precious"
    assert per_seed(out) == per_seed(reference_run)


def test_a_symlinked_units_directory_is_refused(reference_run, tmp_path):
    out = _copy(reference_run, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    shutil.move(os.path.join(out, "paper", "units"), elsewhere)
    os.symlink(elsewhere, os.path.join(out, "paper", "units"))
    before = sorted(os.listdir(elsewhere))
    r = run_cli("table1", "--out", out, *TINY, timeout=60)
    assert r.returncode == 2 and "symlink" in r.stderr
    assert sorted(os.listdir(elsewhere)) == before


# ---------------------------------------------------------------- signals and processes
LONG = ["--protocols", "paper", "--seeds", "4", "--seed-chunk", "1", "--models", "vae-gauss-1d,vae-beta-1d",
        "--steps", "3000", "--iwae-k", "16", "--eval-points", "8", "--no-progress"]


def _start(out, *extra):
    e = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.Popen([sys.executable, "-m", "er_fast", "table1", "--out", out, *LONG, *extra], env=e,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _children(pid):
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    st = open(f"/proc/{pid}/stat").read().split()[2] if os.path.exists(f"/proc/{pid}/stat") else "X"
    return st != "Z"


def _wait_for_units(out, n, timeout=300):
    units = os.path.join(out, "paper", "units")
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.isdir(units) and sum(f.endswith(".json") for _, _, fs in os.walk(units) for f in fs) >= n:
            return
        time.sleep(0.1)
    raise AssertionError("no unit finished in time")


def _wait_workers(p, n=2, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        kids = [k for k in _children(p.pid) if _alive(k)]
        if len(kids) >= n:
            return kids
        time.sleep(0.1)
    raise AssertionError("workers did not start")


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_first_signal_stops_cleanly_with_a_partial_table(tmp_path, sig, code):
    out = str(tmp_path / "stop")
    p = _start(out, "--workers", "2")
    kids = _wait_workers(p)
    _wait_for_units(out, 1)
    t = time.time()
    os.kill(p.pid, sig)
    _, err = p.communicate(timeout=60)
    assert time.time() - t < 20
    assert p.returncode == code, err
    assert "Traceback" not in err and "Resume with the same command" in err
    res = json.load(open(os.path.join(out, "paper", "results.json")))
    assert res["partial"] is True and 1 <= res["units_done"] < res["units_total"]
    assert "PARTIAL" in open(os.path.join(out, "table.md")).read()
    time.sleep(1)
    assert not [k for k in kids if _alive(k)]


def test_second_ctrl_c_stops_at_once(tmp_path):
    out = str(tmp_path / "twice")
    p = _start(out, "--workers", "1")
    _wait_for_units(out, 1)
    os.kill(p.pid, signal.SIGINT)
    time.sleep(0.05)
    os.kill(p.pid, signal.SIGINT)
    _, err = p.communicate(timeout=30)
    assert p.returncode == 130 and "at once" in err


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_workers_die_with_their_parent(tmp_path, sig):
    out = str(tmp_path / "orphans")
    p = _start(out, "--workers", "2")
    kids = _wait_workers(p)
    os.kill(p.pid, sig)
    p.communicate(timeout=60)
    deadline = time.time() + 15
    while time.time() < deadline and any(_alive(k) for k in kids):
        time.sleep(0.2)
    assert not [k for k in kids if _alive(k)]
