"""Run a channel analysis: stream calibration latents through a decoder with live hooks on every
prunable tensor, then turn the accumulated Grams into per-group and per-stage reports.

Causal (Wan) decoders are fed one latent frame at a time through ``decoder.stream()``, so memory is
bounded by one chunk of activations plus the float64 Grams, whatever the clip length.
"""

from __future__ import annotations

import logging
from typing import Iterable

import torch

from lab.analysis import linalg
from lab.analysis.groups import taps
from lab.analysis.hooks import ChannelRecorder, Subscriber
from lab.arch import channel_groups
from lab.arch.groups import ChannelGroup, consumer_tap, norm_tap
from lab.errors import LabError
from lab.progress import Progress
from lab.runtime.fused.conv import onednn_conv3d
from lab.analysis.sensitivity import output_sensitivity

log = logging.getLogger("lab")

#: Keep ratios at which reports quote the explained variance.
REPORT_RATIOS = (0.5, 0.25, 0.125)


class ChannelAnalysis:
    """The result of streaming clips through a decoder: Grams per tap, and the group map."""

    def __init__(self, decoder_name: str, groups: list[ChannelGroup], recorder: ChannelRecorder,
                 clips: list[str] | None = None):
        self.decoder_name = decoder_name
        self.groups = groups
        self.recorder = recorder
        self.clips = list(clips or [])
        self.steps = 0
        # consumer path -> output-sensitivity metric (lab.analysis.sensitivity); filled on demand by
        # add_sensitivity(), used by the independence-jacobian criterion.
        self.sensitivity: dict[str, torch.Tensor] = {}

    @property
    def stats(self):
        return self.recorder.stats

    def group(self, name: str) -> ChannelGroup:
        for g in self.groups:
            if g.name == name:
                return g
        raise LabError(f"no channel group '{name}'; groups: {', '.join(g.name for g in self.groups)}")

    def consumer_gram(self, consumer_path: str) -> torch.Tensor | None:
        st = self.stats.get(consumer_tap(consumer_path))
        return None if st is None or st.count == 0 else st.augmented()

    def add_sensitivity(self, decoder, latents, *, probes: int = 4, seed: int = 0) -> "ChannelAnalysis":
        """Estimate how much the decoder output depends on each consumer's input channels (Jacobian
        Grams, lab.analysis.sensitivity) on ``latents`` and keep them with the analysis."""

        if decoder.name != self.decoder_name:
            raise LabError(f"this analysis was recorded on {self.decoder_name}, not {decoder.name}; probe the same "
                           f"decoder the Grams came from.")
        self.sensitivity.update(output_sensitivity(decoder, latents, self.groups, probes=probes, seed=seed))
        return self

    def output_metric(self, consumer_path: str) -> torch.Tensor | None:
        return self.sensitivity.get(consumer_path)

    def selection_gram(self, group: ChannelGroup) -> torch.Tensor:
        """Sum over the group's consumers of their input Grams, each scaled to unit total variance, so
        the selection serves every layer that reads the channels equally."""
        total = None
        for c in group.consumers:
            g = self.consumer_gram(c.path)
            if g is None:
                continue
            if g.shape[0] - 1 != group.width:
                raise LabError(f"{c.path} saw {g.shape[0] - 1} channels but group {group.name} has width "
                               f"{group.width}; the analysis was recorded on a different model.")
            scale = float(torch.diagonal(linalg.residual_gram(g)).sum())
            g = g / scale if scale > 0 else g
            total = g if total is None else total + g
        if total is None:
            raise LabError(f"nothing was recorded for group {group.name}: its consumers "
                           f"({', '.join(c.path for c in group.consumers)}) never ran. Stream more latent "
                           f"frames (Wan's temporal upsamplers run from the second frame on).")
        return total

    def rms_ratio(self, norm_path: str, keep: list[int]) -> float:
        """rms over the kept channels / rms over all channels, at the input of an RMS norm: the factor
        its gamma needs when the norm runs on the kept channels only."""
        st = self.stats.get(norm_tap(norm_path))
        if st is None or st.count == 0:
            raise LabError(f"no statistics for norm {norm_path}; re-run the analysis on this teacher")
        m2 = st.second_moment()
        return float(torch.sqrt(m2[keep].mean() / m2.mean().clamp_min(1e-30)))

    def layernorm_affine(self, norm_path: str, keep: list[int]) -> tuple[float, float]:
        """(gain, shift) for a LayerNorm that runs on the kept channels only: the teacher normalises
        with the mean and spread of all channels, the student with those of the kept ones. With
        mu, sigma (all) and mu_S, sigma_S (kept) per position, (x - mu) / sigma = (x - mu_S) / sigma_S *
        (sigma_S / sigma) + (mu_S - mu) / sigma; both factors are replaced by their averages over the
        recorded positions (gain = sqrt(E var_S / E var), shift = E[mu_S - mu] / sqrt(E var)), so the
        student's gamma_S becomes gamma_S * gain and its beta_S becomes beta_S + gamma_S * shift."""
        st = self.stats.get(norm_tap(norm_path))
        if st is None or st.count == 0 or st.gram is None:
            raise LabError(f"no full statistics for LayerNorm {norm_path}; re-run the analysis on this teacher "
                           f"(LayerNorm inputs are recorded with a full Gram)")
        n, c, k = float(st.count), st.channels, len(keep)
        idx = torch.as_tensor(keep)
        gram, sums = st.gram.cpu(), st.sum.cpu()  # the accumulators live on the teacher's device
        m2 = st.sumsq.cpu() / n

        def mean_var(ix, size):
            # E over positions of (mean_c x_c^2 - (mean_c x_c)^2) for the channel set ix.
            sq_mean = float(gram[ix][:, ix].sum()) / (size * size * n)
            return float(m2[ix].mean()) - sq_mean

        all_ix = torch.arange(c)
        var_all, var_kept = mean_var(all_ix, c), mean_var(idx, k)
        if var_all <= 0:
            return 1.0, 0.0
        gain = (max(var_kept, 0.0) / var_all) ** 0.5 if k > 1 else 1.0
        shift = (float(sums[idx].mean()) - float(sums.mean())) / n / var_all ** 0.5
        return gain, shift

    # ----- reports -----------------------------------------------------------------------------
    def group_report(self, group: ChannelGroup | str, matrices: bool = False) -> dict:
        g = self.group(group) if isinstance(group, str) else group
        gram = self.selection_gram(g)
        scores = linalg.independence_scores(gram)
        order, residuals = linalg.greedy_select(gram)
        curve = linalg.explained_variance_curve(gram, residuals)
        out = {
            "group": g.name, "stage": g.stage, "width": g.width, "prunable": g.prunable,
            "independence": scores.tolist(),
            "selection_order": list(order),  # the independence criterion's ranking (greedy selection)
            "independence_mean": float(scores.mean()),
            "explained_variance": curve,
            "explained_at": {str(r): curve[max(1, round(r * g.width))] for r in REPORT_RATIOS},
            "rank_99": next(k for k, v in enumerate(curve) if v >= 0.99 or k == g.width),
        }
        if matrices:
            cov = linalg.residual_gram(gram)
            d = torch.sqrt(torch.diagonal(cov).clamp_min(1e-30))
            out["correlation"] = (cov / torch.outer(d, d)).clamp(-1, 1).tolist()
        return out

    def stage_report(self, matrices: bool = False) -> dict[str, list[dict]]:
        """stage -> reports of its groups (those that recorded anything)."""
        out: dict[str, list[dict]] = {}
        for g in self.groups:
            if not any(self.consumer_gram(c.path) is not None for c in g.consumers):
                continue
            out.setdefault(g.stage, []).append(self.group_report(g, matrices))
        return out

    def summary(self) -> dict:
        """Compact, JSON-friendly: per group width, mean independence, explained variance at the
        report ratios, and the kept ratio needed for 99% explained variance."""
        rows = []
        for stage, reports in self.stage_report().items():
            for r in reports:
                rows.append({"stage": stage, "group": r["group"], "width": r["width"], "prunable": r["prunable"],
                             "independence_mean": r["independence_mean"], "rank_99": r["rank_99"],
                             **{f"ev@{k}": v for k, v in r["explained_at"].items()}})
        return {"decoder": self.decoder_name, "clips": self.clips, "steps": self.steps, "groups": rows}


def analyze(decoder, latents: Iterable[torch.Tensor] | torch.Tensor, *, groups: list[ChannelGroup] | None = None,
            subscribers: Iterable[Subscriber] = (), clip_names: list[str] | None = None,
            analysis: ChannelAnalysis | None = None) -> ChannelAnalysis:
    """Stream normalized latents (one tensor or a list of clips, each N,C,T,H,W) through ``decoder``
    with hooks on every tensor the channel groups read. Subscribers get an event per step
    ({'event': 'step', 'step', 'steps_total', 'clip', 'analysis'}; 'analysis' allows partial
    reports) and a final {'event': 'done'}. Pass ``analysis`` to keep accumulating into an earlier one.
    """
    clips = [latents] if torch.is_tensor(latents) else list(latents)
    if not clips:
        raise LabError("analyze() needs at least one latent clip")
    for z in clips:
        decoder.check_latents(z)
    if analysis is None:
        groups = channel_groups(decoder) if groups is None else groups
        analysis = ChannelAnalysis(decoder.name, groups, ChannelRecorder(decoder.vae, taps(groups, decoder.vae)), clip_names)
    rec = analysis.recorder
    unsubs = [rec.subscribe(fn) for fn in subscribers]
    causal = decoder.causal
    steps_total = sum(z.shape[2] if causal else 1 for z in clips)
    step = 0
    bar = Progress("analyze", steps_total, unit="latent frame" if causal else "clip")
    try:
        # oneDNN for every float32 3D conv on the CPU: the same modules and hooks, where ATen gives a causal
        # step's few frames to slow_conv3d (lab.runtime.fused.conv)
        with rec, torch.no_grad(), onednn_conv3d(decoder.device):
            for ci, z in enumerate(clips):
                name = (clip_names or [])[ci] if clip_names and ci < len(clip_names) else f"clip{ci}"
                if causal:
                    session = decoder.stream()
                    for t in range(z.shape[2]):
                        session.push(z[:, :, t:t + 1])
                        step += 1
                        analysis.steps += 1
                        rec.publish({"event": "step", "step": step, "steps_total": steps_total, "clip": name,
                                     "latent_frame": t, "analysis": analysis})
                        bar.update(note=name)
                else:
                    decoder.decode(z)
                    step += 1
                    analysis.steps += 1
                    rec.publish({"event": "step", "step": step, "steps_total": steps_total, "clip": name,
                                 "analysis": analysis})
                    bar.update(note=name)
        rec.publish({"event": "done", "step": step, "steps_total": steps_total, "analysis": analysis})
    finally:
        for u in unsubs:
            u()
        bar.close()
    return analysis
