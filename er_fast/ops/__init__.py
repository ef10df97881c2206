"""The er_fast ops: each public function runs the compiled kernel when there is one for the
tensors' device and falls back to er_fast.reference otherwise."""
from ._ext import LOADED, backend_info, use_reference
from .beta import beta_rsample, beta_rsample_grad
from .manifold import circle_embed, so2_rotate
from .mmd import mmd_imq

__all__ = ["LOADED", "backend_info", "use_reference", "beta_rsample", "beta_rsample_grad", "circle_embed", "so2_rotate", "mmd_imq"]
