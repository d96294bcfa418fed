"""Three-phase dynamic distillation of decoder students (and, through the same loop, lightweight
decoders): ``distill(config, out, resume=False, callbacks=())``. See lab/distill/trainer.py (the task) and
lab/training/loop.py (the loop it shares with teacher training)."""

from lab.entrypoints import make_callable
from lab.distill.config import DistillConfig, PhaseConfig, PlateauConfig, load_config
from lab.distill.losses import LOSSES, register_loss
from lab.distill.run import distill
from lab.training.hooks import Callback, FunctionCallback, RunStoreLogger, StepState, TensorBoardLogger
from lab.training.loop import TrainingError

# ``from lab import distill`` gives this package (importing a subpackage binds its name on lab), so calling the
# package calls distill() (lab.entrypoints).
make_callable(__name__, distill)

__all__ = ["Callback", "DistillConfig", "FunctionCallback", "LOSSES", "PhaseConfig", "PlateauConfig", "RunStoreLogger",
           "StepState", "TensorBoardLogger", "TrainingError", "distill", "load_config", "register_loss"]
