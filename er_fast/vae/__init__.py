"""Layer 2, the science: the toy data, the models as S stacked seeds, the WAE-MMD embedding
learner, the trainer and the held-out evaluation. Uses er_fast.ops; knows nothing of the
application (er_fast.app)."""
from .config import DataConfig, EvalConfig, TrainConfig, WaeConfig
from .data import ToyData
from .embedding import Embedding, embedding_quality, load_embedding, train_embedding
from .evaluation import evaluate
from .model import StackedVAE
from .specs import ModelSpec, get_spec, list_models
from .train import Trainer, train_seeds
from .trained import TrainedModels

__all__ = [
    "DataConfig", "EvalConfig", "TrainConfig", "WaeConfig", "ToyData", "Embedding", "embedding_quality",
    "load_embedding", "train_embedding", "evaluate", "StackedVAE", "ModelSpec", "get_spec", "list_models",
    "Trainer", "train_seeds", "TrainedModels",
]
