"""Training: one `Trainer` for any Legato network, an `Objective`, and the data plumbing around them."""

from legato.diffusion.training.data import (
    BucketBatches,
    Item,
    ItemDataset,
    TensorItems,
    collate,
    drop_conditions,
)
from legato.diffusion.training.objective import Objective, TrainingObjective, shifted_betas
from legato.diffusion.training.trainer import TrainConfig, Trainer, TrainResult

__all__ = [
    "BucketBatches",
    "Item",
    "ItemDataset",
    "Objective",
    "TensorItems",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingObjective",
    "collate",
    "drop_conditions",
    "shifted_betas",
]
