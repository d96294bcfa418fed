"""Videos the demo shows: several decodes side by side in one file (so they play in sync whatever the
browser does), each column labelled, and the amplified difference to the real clip."""

from __future__ import annotations

import numpy as np
import torch

from lab.data.video import side_by_side, to_frames

LABEL_HEIGHT = 14


def difference(video: torch.Tensor, reference: torch.Tensor, gain: float = 4.0) -> torch.Tensor:
    """|video - reference| averaged over RGB, times ``gain``, as a grey video in [-1, 1] (black: equal;
    white: off by 1/gain of the full range or more)."""
    d = (video.float().cpu() - reference.float().cpu()).abs().mean(dim=1, keepdim=True) / 2.0
    return (d * gain).clamp(0, 1).mul(2).sub(1).expand(-1, 3, -1, -1, -1).contiguous()


def labelled_row(videos: list[torch.Tensor], labels: list[str]) -> np.ndarray:
    """Videos of one shape side by side, a label strip above each column: uint8 (T, H + strip, W, 3)."""
    frames = to_frames(side_by_side(*videos))
    width = videos[0].shape[-1]
    strip = np.full((LABEL_HEIGHT, frames.shape[2], 3), 255, dtype=np.uint8)
    try:
        from PIL import Image, ImageDraw  # deferred: Pillow is optional here (see the except below)
        img = Image.fromarray(strip)
        draw = ImageDraw.Draw(img)
        for i, text in enumerate(labels):
            # Cut long labels to the column so they never spill into the next one (~6 px per character).
            draw.text((i * width + 2, 1), text[: max(1, width // 6)], fill=(0, 0, 0))
        strip = np.asarray(img)
    except ImportError:  # pillow ships with gradio; without it the columns are just unlabelled
        pass
    return np.concatenate([np.broadcast_to(strip, (frames.shape[0], *strip.shape)), frames], axis=1)
