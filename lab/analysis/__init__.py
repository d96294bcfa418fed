"""Channel-independence analysis: live hooks that accumulate per-channel Grams while a decoder runs,
and the least-squares algebra that turns them into independence scores, correlation matrices and
explained-variance curves. (Pruning, in lab.prune, builds on this; nothing here imports it.)"""

from lab.analysis.calibration import calibration_latents, default_calibration_clips
from lab.analysis.hooks import ChannelRecorder
from lab.analysis.linalg import (explained_variance_curve, fold_weights, greedy_select, independence_scores,
                                 subset_residual)
from lab.analysis.run import ChannelAnalysis, analyze
from lab.analysis.stats import ChannelStats
from lab.arch import ChannelGroup, Consumer, channel_groups

__all__ = ["ChannelAnalysis", "ChannelGroup", "ChannelRecorder", "ChannelStats", "Consumer", "analyze",
           "calibration_latents", "channel_groups", "default_calibration_clips", "explained_variance_curve", "fold_weights", "greedy_select",
           "independence_scores", "subset_residual"]
