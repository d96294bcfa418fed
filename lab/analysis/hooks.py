"""Live hooks: forward pre-hooks that feed ChannelStats while a decoder runs, and a tiny publish /
subscribe channel so notebooks and apps can watch an analysis (progress and partial results) as it
streams clips through the model.

    rec = ChannelRecorder(vae, {"in:decoder.conv_out": ("decoder.conv_out", False)})
    rec.subscribe(lambda event: print(event["step"], event["steps_total"]))
    with rec:            # hooks live only inside the block
        decoder.decode(z)
    rec.stats["in:decoder.conv_out"].correlation()
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from torch import nn

from lab.analysis.stats import ChannelStats
from lab.errors import LabError

log = logging.getLogger("lab")

Subscriber = Callable[[dict], None]


def _channel_dim(module: nn.Module) -> int:
    """Where a module's input keeps its channels: convs and Wan's RMS norm read NC..., while diffusers'
    RMSNorm and LayerNorm (LTX, which moves channels last around them) normalise the last axis."""
    if isinstance(module, nn.LayerNorm) or type(module).__name__ == "RMSNorm":
        return -1
    return 1


class ChannelRecorder:
    """Records channel statistics of module inputs. ``taps``: name -> (module path, diag_only).

    Statistics are created lazily from the first tensor each module sees, so the same recorder works
    on teachers and students of any width.
    """

    def __init__(self, root: nn.Module, taps: dict[str, tuple[str, bool]]):
        self.root = root
        self.taps = dict(taps)
        self.stats: dict[str, ChannelStats] = {}
        self._handles: list = []
        self._subscribers: list[Subscriber] = []
        self._t0 = None
        for name, (path, _) in self.taps.items():
            try:
                root.get_submodule(path)
            except AttributeError as exc:
                raise LabError(f"tap '{name}' names {path}, which this model does not have ({exc}). Channel "
                               f"groups must be listed for the model they are recorded on.") from None

    # ----- hooks ------------------------------------------------------------------------------
    def attach(self) -> "ChannelRecorder":
        if self._handles:
            return self
        for name, (path, diag_only) in self.taps.items():
            module = self.root.get_submodule(path)
            self._handles.append(module.register_forward_pre_hook(self._make_hook(name, diag_only,
                                                                                 _channel_dim(module))))
        self._t0 = time.perf_counter()
        return self

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self) -> "ChannelRecorder":
        return self.attach()

    def __exit__(self, *exc) -> None:
        self.detach()

    def _make_hook(self, name: str, diag_only: bool, channel_dim: int = 1):
        def hook(module, args):
            x = args[0]
            st = self.stats.get(name)
            if st is None:
                st = self.stats[name] = ChannelStats(x.shape[channel_dim], diag_only=diag_only, device=x.device)
            st.update(x, channel_dim=channel_dim)
        return hook

    # ----- publish / subscribe ---------------------------------------------------------------
    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        """Call ``fn(event)`` on every published event; returns a function that unsubscribes."""
        if not callable(fn):
            raise LabError(f"subscribers must be callables taking one event dict, got {type(fn).__name__}")
        self._subscribers.append(fn)
        return lambda: self._subscribers.remove(fn) if fn in self._subscribers else None

    def publish(self, event: dict) -> None:
        event = {"elapsed_s": time.perf_counter() - (self._t0 or time.perf_counter()), **event}
        for fn in list(self._subscribers):
            try:
                fn(event)
            except Exception as exc:  # a broken widget must not kill a long analysis
                log.warning("analysis subscriber %r failed: %s: %s", fn, type(exc).__name__, exc)
