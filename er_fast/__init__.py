"""er_fast: fused kernels and a thin library for the embedding-reparameterization (ER) procedure.

Layers (each imports only those below it): er_fast.util (validation, threads, timing) <
er_fast.ops (the custom ops and their pure-PyTorch references) < er_fast.vae (data, models,
trainer, evaluation) < er_fast.app (the `er-fast` command line: Table 1, benchmarks).
"""
import sys as _sys

__version__ = "0.2.0"

from . import ops, vae  # noqa: E402
from .ops import (  # noqa: E402
    Beta, backend_info, beta_rsample, beta_rsample_grad, circle_embed, mmd_imq, so2_rotate, use_reference,
)
from .vae import (  # noqa: E402
    DataConfig, EvalConfig, ToyData, TrainConfig, TrainedModels, Trainer, WaeConfig, evaluate, list_models,
    train_embedding, train_seeds,
)

# Import paths README promised before the layered layout (er_fast.data, er_fast.distributions.Beta,
# ...) are kept as aliases of the new modules. (er_fast.evaluate, the attribute, is the function.)
for _old, _new in {"distributions": ops.distributions, "data": vae.data, "models": vae.model,
                   "wae": vae.embedding, "train": vae.train, "evaluate": vae.evaluation}.items():
    _sys.modules[f"{__name__}.{_old}"] = _new
    if _old != "evaluate":
        globals()[_old] = _new
del _old, _new

__all__ = [
    "__version__", "Beta", "backend_info", "beta_rsample", "beta_rsample_grad", "circle_embed", "mmd_imq",
    "so2_rotate", "use_reference", "DataConfig", "EvalConfig", "ToyData", "TrainConfig", "TrainedModels",
    "Trainer", "WaeConfig", "evaluate", "list_models", "train_embedding", "train_seeds",
]
