"""Shared test settings: the devices and dtypes every op is tested on (pytorch_scatter's pattern),
and a guard that the tests never test the pure-PyTorch fallback by accident."""
import os

import pytest
import torch

import er_fast
from er_fast.ops import backend

devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
dtypes = [torch.float32, torch.float64]
grad_dtypes = [torch.float64]

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible")


def pytest_sessionstart(session):
    # Without the compiled extension every op silently runs its reference: the kernel tests would
    # then test nothing. The usual cause is the source folder shadowing an installed er_fast.
    if not backend.LOADED and os.environ.get("ER_FAST_TEST_FALLBACK") != "1":
        pkg = os.path.dirname(er_fast.__file__)
        raise pytest.UsageError(
            f"er_fast was imported from {pkg} without its compiled extension ({backend.LOAD_ERROR}). "
            "Build it in place with `pip install --no-build-isolation -e .` (after a non-editable "
            "`pip install .`, the repository's er_fast/ folder, which has no _C, shadows the installed "
            "package), or set ER_FAST_TEST_FALLBACK=1 to test the pure-PyTorch fallback on purpose."
        )


def pytest_report_header(config):
    return [f"er_fast {er_fast.__version__} from {os.path.dirname(er_fast.__file__)}",
            f"er_fast backends: {er_fast.backend_info()}"]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
