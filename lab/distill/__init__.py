"""Three-phase dynamic distillation of decoder students (and, through the same loop, lightweight
decoders): ``distill(config, out, resume=False, callbacks=())``. See lab/distill/trainer.py."""

from lab.distill.config import DistillConfig, PhaseConfig, PlateauConfig, load_config
from lab.distill.hooks import Callback, FunctionCallback, RunStoreLogger, StepState, TensorBoardLogger
from lab.distill.losses import LOSSES, register_loss
from lab.distill.run import distill
from lab.distill.trainer import TrainingError

__all__ = ["Callback", "DistillConfig", "FunctionCallback", "LOSSES", "PhaseConfig", "PlateauConfig", "RunStoreLogger",
           "StepState", "TensorBoardLogger", "TrainingError", "distill", "load_config", "register_loss"]
