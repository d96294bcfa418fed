"""What every pruned student adapter shares, whatever its family: the teacher it came from, how it is
saved (a diffusers folder of its ``vae``) and reloaded, and what it records about its construction."""

from __future__ import annotations

from pathlib import Path

import torch

from lab.models.interface import VideoDecoder


def plain(v):
    """A teacher config value as JSON-friendly Python, as a student's config records it (FrozenDict
    lists/tuples -> lists, tensors -> lists)."""
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, torch.Tensor):
        return v.tolist()
    return v


class StudentAdapter(VideoDecoder):
    """Base of the Wan and LTX student adapters. Subclasses set ``vae_class`` (a ModelMixin whose config
    records teacher, criterion, ratios, widths and operators) and hold the model as ``self.vae``."""

    family = "student"
    vae_class: type = None

    @property
    def teacher_name(self) -> str:
        return self.vae.config.teacher

    def teacher_group_widths(self) -> dict[str, int]:
        """Channel group -> its width in the teacher (what the student's ``kept`` indices index)."""
        return self.vae.teacher_widths()

    def _save_model(self, folder: Path) -> None:
        self.vae.save_pretrained(folder, safe_serialization=True)

    def _meta_extra(self) -> dict:
        c = self.vae.config
        return {"teacher": c.teacher, "criterion": c.criterion, "ratios": dict(c.ratios or {}),
                "operators": dict(c.operators or {})}

    def describe(self) -> dict:
        c = self.vae.config
        return {**super().describe(), "teacher": c.teacher, "criterion": c.criterion,
                "ratios": dict(c.ratios or {}), "widths": dict(c.widths or {}), "operators": dict(c.operators or {})}

    @classmethod
    def from_saved(cls, folder: Path, meta: dict) -> "StudentAdapter":
        # Built on real tensors, not diffusers' meta-device fast path: operator swaps in the constructor
        # probe each new layer with a forward pass, which meta tensors cannot run.
        return cls(meta["name"], cls.vae_class.from_pretrained(str(folder), low_cpu_mem_usage=False))
