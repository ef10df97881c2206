"""Shared test settings: the devices and dtypes every op is tested on (pytorch_scatter's pattern)."""
import os

import pytest
import torch

import er_fast
from er_fast.ops import _ext

devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
dtypes = [torch.float32, torch.float64]
grad_dtypes = [torch.float64]

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible")


def pytest_sessionstart(session):
    # CI sets ER_FAST_REQUIRE_EXT=1 so a broken build cannot pass by testing only the fallbacks.
    if os.environ.get("ER_FAST_REQUIRE_EXT") == "1" and not _ext.LOADED:
        raise RuntimeError(f"ER_FAST_REQUIRE_EXT=1 but the extension did not load: {_ext._load_error}")


def pytest_report_header(config):
    return [f"er_fast backends: {er_fast.backend_info()}"]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
