"""er_fast: fused kernels and a thin library for the embedding-reparameterization (ER) procedure."""
from .ops import backend_info, beta_rsample, beta_rsample_grad, circle_embed, mmd_imq, so2_rotate, use_reference
from . import distributions  # noqa: E402 (uses .ops)

__version__ = "0.1.0"
__all__ = ["backend_info", "beta_rsample", "beta_rsample_grad", "circle_embed", "distributions", "mmd_imq", "so2_rotate", "use_reference", "__version__"]
