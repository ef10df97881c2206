"""Pure-PyTorch versions of every op: the test oracle and the fallback when the extension is absent."""
from .manifold import circle_embed, so2_rotate
from .mmd import mmd_imq

__all__ = ["circle_embed", "so2_rotate", "mmd_imq"]
