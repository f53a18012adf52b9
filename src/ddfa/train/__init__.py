"""Training: 3DDFA's losses, data formats and augmentation, synthetic data, the trainer and DDP.

* :mod:`~ddfa.train.losses`: PDC, VDC, WPDC (parity with 3DDFA's reference values).
* :mod:`~ddfa.train.data`: 3DDFA's training format, ddfa's own format, augmentation, loader.
* :mod:`~ddfa.train.synth`: synthetic crops rendered from the morphable model (``ddfa synth``).
* :mod:`~ddfa.train.config` / :mod:`~ddfa.train.trainer`: ``ddfa train`` (SGD, schedule,
  checkpoints, resume, validation NME, logs) and :mod:`~ddfa.train.distributed` (DDP, torchrun).
"""

from .config import StageConfig, TrainConfig
from .data import AugmentConfig, CropDataset, read_3ddfa_dataset, read_ddfa_dataset, write_ddfa_dataset
from .losses import LOSSES, PDCLoss, VDCLoss, WPDCLoss, build_loss, wpdc_weights
from .metrics import landmark_nme
from .synth import SynthConfig, synthesize
from .trainer import Trainer, TrainingError, TrainResult, train

__all__ = [
    "LOSSES",
    "AugmentConfig",
    "CropDataset",
    "PDCLoss",
    "StageConfig",
    "SynthConfig",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingError",
    "VDCLoss",
    "WPDCLoss",
    "build_loss",
    "landmark_nme",
    "read_3ddfa_dataset",
    "read_ddfa_dataset",
    "synthesize",
    "train",
    "wpdc_weights",
    "write_ddfa_dataset",
]
