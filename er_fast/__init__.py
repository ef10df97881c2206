"""er_fast: fused kernels and a thin library for the embedding-reparameterization (ER) procedure."""
from .ops import backend_info, beta_rsample, circle_embed, mmd_imq, so2_rotate, use_reference

__version__ = "0.1.0"
__all__ = ["backend_info", "beta_rsample", "circle_embed", "mmd_imq", "so2_rotate", "use_reference", "__version__"]
