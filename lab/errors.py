"""Errors the lab raises on bad input.

Every message names the problem and the fix, so that a user reading a traceback (or the CLI's
one-line error) knows what to change without opening the source.
"""


class LabError(Exception):
    """Base class: the CLI prints these as one clean line instead of a stack trace."""


class LatentShapeError(LabError, ValueError):
    """Latents of the wrong rank, channel count, dtype, device or frame count."""


class VideoShapeError(LabError, ValueError):
    """A video tensor the model cannot encode (rank, channels, frame count, resolution)."""


class UnknownModelError(LabError, KeyError):
    """A decoder name that is neither registered nor a folder saved by the lab."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class WeightsNotFoundError(LabError, FileNotFoundError):
    """Weights that cannot be loaded: missing file, unreachable hub, wrong format."""


class CheckpointError(LabError, ValueError):
    """A checkpoint that is corrupted or does not match the model it is loaded into."""


class VideoReadError(LabError, ValueError):
    """A file that is not a readable video."""


class ConfigError(LabError, ValueError):
    """A configuration with an unknown key or a bad value."""


class OutputPathError(LabError, OSError):
    """An output path this process cannot write: a name too long for the file system, a read-only folder."""


class DiskFullError(LabError, OSError):
    """The disk (or the user's quota) ran out of space while the lab wrote to it."""
