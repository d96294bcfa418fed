"""Videos the demo shows: several decodes side by side in one file (so they play in sync whatever the
browser does), each column labelled, and the amplified difference to the real clip."""

from __future__ import annotations

import math
import re

import numpy as np
import torch

from lab.data.video import side_by_side, to_frames

#: font sizes tried, largest first: the largest at which every word of every label fits its column
FONT_SIZES = (10, 9, 8, 7)
#: blank pixels around the text of a label strip
PAD = 2
#: narrower columns are enlarged (pixel repetition) to at least this width, room for their labels
MIN_COLUMN = 128


def difference(video: torch.Tensor, reference: torch.Tensor, gain: float = 4.0) -> torch.Tensor:
    """|video - reference| averaged over RGB, times ``gain``, as a grey video in [-1, 1] (black: equal;
    white: off by 1/gain of the full range or more)."""
    d = (video.float().cpu() - reference.float().cpu()).abs().mean(dim=1, keepdim=True) / 2.0
    return (d * gain).clamp(0, 1).mul(2).sub(1).expand(-1, 3, -1, -1, -1).contiguous()


#: the pieces a word may be broken into: per-stage lists after their commas ('up1=0.5,' 'up2=0.125')
PIECES = re.compile(r"[^,]+,?|,")


def _tokens(text: str) -> list[str]:
    return [t for word in text.split() for t in PIECES.findall(word)]


def wrap_label(text: str, width: int, measure) -> list[str]:
    """``text`` in lines no wider than ``width`` (``measure(str)`` -> px): broken at spaces and after
    commas, and a word wider than the column between characters, so nothing is ever cut off."""
    lines, line = [], ""
    for word in text.split():
        for k, token in enumerate(PIECES.findall(word)):
            glue = "" if k or not line else " "  # tokens of one word join without a space
            if measure(line + glue + token) <= width:
                line += glue + token
                continue
            if line:
                lines.append(line)
            while len(token) > 1 and measure(token) > width:
                n = max([i for i in range(1, len(token)) if measure(token[:i]) <= width], default=1)
                lines.append(token[:n])
                token = token[n:]
            line = token
    return lines + [line] if line else lines


def _fonts():
    from PIL import ImageFont  # deferred: Pillow is optional here (see labelled_row)
    for size in FONT_SIZES:
        try:
            yield ImageFont.load_default(size=size)
        except (TypeError, ValueError, OSError):  # no FreeType: the fixed bitmap font, one size
            yield ImageFont.load_default()
            return


def label_strip(labels: list[str], column_width: int) -> tuple[np.ndarray, list[list[str]]]:
    """A white uint8 (h, len(labels) * column_width, 3) strip with each label in black above its column,
    wrapped to the column and as tall as the longest label needs (h even: H.264's yuv420p needs
    even sizes); and the lines drawn per label."""
    from PIL import Image, ImageDraw  # deferred: Pillow is optional here (see labelled_row)
    room = max(1, column_width - 2 * PAD)
    fonts = list(_fonts())
    for font in fonts:  # the largest size at which no word has to be broken
        if all(font.getlength(t) <= room for text in labels for t in _tokens(text)):
            break
    measure = font.getlength
    wrapped = [wrap_label(text, room, measure) for text in labels]
    ascent, descent = font.getmetrics()
    line_height = ascent + descent + 1
    height = 2 * PAD + line_height * max(1, max(len(lines) for lines in wrapped)) - 1
    height += height % 2
    img = Image.new("RGB", (column_width * len(labels), height), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    for i, lines in enumerate(wrapped):
        for j, line in enumerate(lines):
            draw.text((i * column_width + PAD, PAD + j * line_height), line, fill=(0, 0, 0), font=font)
    return np.asarray(img), wrapped


def labelled_row(videos: list[torch.Tensor], labels: list[str], min_column: int = MIN_COLUMN) -> np.ndarray:
    """Videos of one shape side by side, each label in a strip above its column, wrapped to the column
    (never cut): uint8 (T, strip + H * s, W * s, 3). Columns narrower than ``min_column`` px are
    enlarged s times by pixel repetition (no pixel is changed: the browser would enlarge them anyway,
    blurred), so a label has room for a few words per line."""
    frames = to_frames(side_by_side(*videos))
    scale = max(1, math.ceil(min_column / videos[0].shape[-1]))
    if scale > 1:
        frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    try:
        strip, _ = label_strip(labels, videos[0].shape[-1] * scale)
    except ImportError:  # pillow ships with gradio; without it the columns are just unlabelled
        return frames
    return np.concatenate([np.broadcast_to(strip, (frames.shape[0], *strip.shape)), frames], axis=1)
