"""Layer 1, the ops: each public function runs the compiled kernel when there is one for the
tensors' device and falls back to its pure-PyTorch twin in er_fast.ops.reference otherwise.

One module per op: argument checks, the fake (meta) kernel and the autograd formula beside the
call into torch.ops.er_fast.*; backend.py loads the extension and picks the implementation.
"""
from .adam import adam_
from .backend import LOADED, backend_info, use_reference
from .beta import beta_rsample, beta_rsample_grad, beta_rsample_keyed
from .circle import circle_embed, so2_rotate
from .distributions import Beta
from .mmd import mmd_imq
from .random import philox_normal, philox_uniform

__all__ = ["LOADED", "Beta", "backend_info", "use_reference", "beta_rsample", "beta_rsample_grad", "beta_rsample_keyed", "circle_embed",
           "so2_rotate", "mmd_imq", "philox_uniform", "philox_normal", "adam_"]
