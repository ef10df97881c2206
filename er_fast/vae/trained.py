"""TrainedModels: S trained seeds of one model, and its checkpoint format."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..util.validation import fail
from .config import DataConfig, TrainConfig, asdict
from .embedding import load_embedding
from .model import StackedVAE

CHECKPOINT_FORMAT = "er_fast.TrainedModels/2"


@dataclass
class TrainedModels:
    """S trained seeds of one model.

    model: the StackedVAE (parameters with leading dim S). seeds: the S seeds, in slice order.
    config: the TrainConfig they were trained with (``steps`` = the steps actually taken).
    curves: {'step': (L,) int64 array, 'elbo': (L, S) float64 array} — the training-batch ELBO
    (nats per point) averaged over each window of ``log_every`` steps ending at 'step'.
    data_config: the DataConfig of the data set they were trained on.
    streams: the counters of the seeds' random streams when training stopped (er_fast.vae.seeds).
    """

    model: StackedVAE
    seeds: list
    config: TrainConfig
    curves: dict
    data_config: DataConfig
    train_seconds: float = 0.0
    streams: dict = field(default_factory=dict)

    @property
    def model_id(self) -> str:
        return self.model.spec.id

    @property
    def S(self) -> int:
        return len(self.seeds)

    def state_dict(self) -> dict:
        """A checkpoint of plain containers and tensors: ``torch.save`` it and reload with
        ``torch.load(path, weights_only=True)`` then ``TrainedModels.load(...)``. The learned
        embedding (if any) is inside the model's state (keys 'embedding.*')."""
        return {
            "format": CHECKPOINT_FORMAT,
            "model_id": self.model_id,
            "config": asdict(self.config),
            "data_config": asdict(self.data_config),
            "seeds": list(self.seeds),
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "curves": {k: torch.as_tensor(v) for k, v in self.curves.items()},
            "train_seconds": float(self.train_seconds),
            "streams": dict(self.streams),
        }

    @classmethod
    def load(cls, state: dict, *, device="cpu") -> "TrainedModels":
        """Rebuild from ``state_dict()``'s output."""
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            got = state.get("format") if isinstance(state, dict) else type(state).__name__
            fail("checkpoint format", f"be {CHECKPOINT_FORMAT}", got)
        sd = state["model"]
        esd = {k[len("embedding."):]: v for k, v in sd.items() if k.startswith("embedding.")}
        emb = load_embedding(esd) if esd else None
        config = TrainConfig(**{k: tuple(v) if k == "adam_betas" else v for k, v in state["config"].items()})
        data_config = DataConfig(**state["data_config"])
        model = StackedVAE(state["model_id"], len(state["seeds"]), config, data_dim=data_config.dim_x,
                           embedding=emb, device=device)
        model.load_state_dict(sd)
        curves = {k: v.numpy() for k, v in state["curves"].items()}
        return cls(model, list(state["seeds"]), config, curves, data_config, float(state.get("train_seconds", 0.0)),
                   dict(state.get("streams", {})))
