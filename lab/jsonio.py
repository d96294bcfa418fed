"""Strict JSON (RFC 8259) for everything the lab writes for machines: command results (``--json``),
results.json files. A non-finite number, such as the PSNR of two identical videos, is written as the
string "inf", "-inf" or "nan" (``float(s)`` reads it back), never as the bare tokens Infinity/NaN that
other JSON parsers reject; tensors and numpy values become plain Python values."""

from __future__ import annotations

import json
import math


def dumps(result, indent: int | None = 2) -> str:
    """Strict JSON of ``result`` (see the module docstring for non-finite numbers)."""
    return json.dumps(json_safe(result), indent=indent, default=_json_default, allow_nan=False)


def json_safe(obj):
    """``obj`` with tensors/numpy values as Python values and non-finite floats as "inf"/"-inf"/"nan"."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else ("nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf"))
    converted = _json_default(obj) if type(obj).__module__ in ("torch", "numpy") else obj
    return obj if converted is obj else json_safe(converted)


def map_strings(value, fn):
    """``value`` (JSON-like: dicts, lists, tuples, scalars) with ``fn`` applied to every string in it; tuples come
    back as lists, as JSON holds them."""
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, dict):
        return {k: map_strings(v, fn) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [map_strings(v, fn) for v in value]
    return value


def _json_default(obj):
    try:
        # deferred: jsonio needs neither numpy nor torch; it converts their values when they are there
        import numpy as np
        import torch  # deferred: as numpy above
        if isinstance(obj, torch.Tensor):
            return obj.tolist()
        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:
        pass
    return str(obj)
