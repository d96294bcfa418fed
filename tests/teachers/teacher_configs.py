"""The tiny teacher run the tests here train: the real Wan class at its test config, one thread, a few steps."""

from lab.teachers.config import TrainConfig

TINY = dict(model="wan2.1-tiny", steps=5, batch=1, frames=5, crop=32, lr=3e-3, warmup=1, threads=1,
            checkpoint_minutes=60.0, log_every=1)


def tiny_config(**kw) -> TrainConfig:
    """``TINY`` with ``kw`` over it, as the CLI's flags would set it."""
    return TrainConfig.from_flags(**{**TINY, **kw})
