"""Pure-PyTorch versions of every op: the test oracle and the fallback when the extension is absent."""
from .beta import beta_rsample, beta_rsample_grad
from .manifold import circle_embed, so2_rotate
from .mmd import mmd_imq

__all__ = ["beta_rsample", "beta_rsample_grad", "circle_embed", "so2_rotate", "mmd_imq"]
