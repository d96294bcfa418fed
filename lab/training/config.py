"""Strict run configs, for every kind of training run: a config is a tree of dataclasses, read from a TOML,
YAML or JSON file (or a run's own config.json on resume). An unknown key is an error that names it and the
valid ones, and a value of the wrong type is an error that names its dotted key: a typo never trains a run
with the default silently in its place.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path

import yaml

from lab.errors import ConfigError


def read_config_file(path: Path) -> dict:
    """The mapping in a .toml, .yaml/.yml or .json file; ConfigError (with the parser's line) otherwise."""
    text = path.read_text()
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            import tomllib  # deferred: tomllib is Python 3.11+, and the project allows 3.10
            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text) or {}
        elif suffix == ".json":
            data = json.loads(text)
        else:
            raise ConfigError(f"config {path}: unknown format '{suffix}'; use .toml, .yaml or .json.")
    except ConfigError:
        raise
    except Exception as exc:  # parser errors carry line numbers; keep them
        raise ConfigError(f"config {path} does not parse: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a mapping of sections, got {type(data).__name__}.")
    return data


def build_dataclass(cls, data, where: str):
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a table/mapping, got {type(data).__name__} {data!r}.")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in data if k not in fields]
    if unknown:
        raise ConfigError(f"unknown key '{unknown[0]}' in {where}; valid keys: {', '.join(fields)}.")
    kwargs = {}
    for key, value in data.items():
        kwargs[key] = _value(hints[key], value, f"{where}.{key}")
    return cls(**kwargs)


def _value(hint, value, where: str):
    """Check one value against its field's type hint (dataclass, list of dataclasses, or a union of
    plain types); ints are accepted where floats are expected, and lists where tuples are (JSON and TOML
    have no tuples)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return build_dataclass(hint, value, where)
    if origin is list and args and dataclasses.is_dataclass(args[0]):
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list of tables, got {type(value).__name__}.")
        return [build_dataclass(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    options = args if origin in (typing.Union, types.UnionType) else (hint,)
    if value is None:
        if type(None) in options:
            return None
        raise ConfigError(f"{where} cannot be empty.")
    plain = tuple(typing.get_origin(a) or a for a in options if a is not type(None))
    if float in plain and int not in plain and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if tuple in plain and isinstance(value, list):
        value = tuple(value)
    if (bool not in plain and isinstance(value, bool)) or not isinstance(value, plain):
        names = " or ".join(a.__name__ for a in plain)
        raise ConfigError(f"{where} must be {names}, got {type(value).__name__} {value!r}.")
    return value


def changed_keys(old, new, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two config dicts (e.g. a resumed run's longer phases)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [k for key in sorted(set(old) | set(new))
                for k in changed_keys(old.get(key), new.get(key), f"{prefix}{key}.")]
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [k for i, (a, b) in enumerate(zip(old, new)) for k in changed_keys(a, b, f"{prefix}{i}.")]
    return [] if old == new else [prefix.rstrip(".")]
