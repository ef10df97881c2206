"""Pure-PyTorch versions of every op: the float64 test oracle and the fallback when the extension
is absent. Same maths (and, for beta_rsample, the same random streams) as the kernels."""
from .beta import beta_rsample, beta_rsample_grad
from .circle import circle_embed, so2_rotate
from .mmd import mmd_imq

__all__ = ["beta_rsample", "beta_rsample_grad", "circle_embed", "so2_rotate", "mmd_imq"]
