"""Training configs from YAML into typed dataclasses: unknown keys and wrong types are errors.

One reader for every task (detection, fracture, ...): each task declares its dataclasses and
the nested sections they hold; this module checks the values against the fields' defaults.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Demo:
    ...     epochs: int = 10
    ...     lr: float = 0.01
    >>> build_config(Demo, {"epochs": 3, "lr": 1}, "demo")
    Demo(epochs=3, lr=1.0)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from insightray.errors import ConfigError, InputNotFoundError

__all__ = ["build_config", "config_to_dict", "read_config_file"]

T = TypeVar("T")


def build_config(
    kind: type[T],
    values: Mapping[str, Any],
    subject: str,
    sections: Mapping[str, type[Any]] | None = None,
) -> T:
    """Build the dataclass ``kind`` from ``values``, each nested section (a mapping under the
    key in ``sections``) into its own dataclass.

    Raises:
        ConfigError: A key is unknown, a section is not a mapping, or a value has the wrong
            type or range (the message names the key and the ``subject``).
    """
    data = dict(values)
    built: dict[str, Any] = {}
    for key, section_kind in (sections or {}).items():
        if key in data:
            section = data.pop(key)
            if not isinstance(section, Mapping):
                raise ConfigError(subject, f"'{key}' is not a mapping", f"write {key}: {{...}}")
            built[key] = build_config(section_kind, section, f"{subject} {key}")
    fields = {spec.name: spec for spec in dataclasses.fields(kind)}  # type: ignore[arg-type]
    unknown = sorted(str(key) for key in data if key not in fields)
    if unknown:
        raise ConfigError(
            subject, f"unknown key(s) {', '.join(unknown)}", "fix their names or remove them"
        )
    for name, value in data.items():
        built[name] = _checked_value(fields[name], value, subject)
    try:
        return kind(**built)
    except (TypeError, ValueError) as error:
        raise ConfigError(subject, f"invalid values ({error})", "fix them") from None


def config_to_dict(config: Any) -> dict[str, Any]:
    """A config dataclass as a YAML/JSON-ready dictionary (tuples become lists).

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass(frozen=True)
        ... class Demo:
        ...     scale: tuple[float, float] = (0.8, 1.2)
        >>> config_to_dict(Demo())
        {'scale': [0.8, 1.2]}
    """
    return _plain(dataclasses.asdict(config))  # type: ignore[no-any-return]


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _checked_value(spec: dataclasses.Field[Any], value: Any, subject: str) -> Any:
    """Check ``value`` against the type of the field's default (bool, int, float, str, tuple).

    A field called ``data`` takes a path, or also a mapping where its type allows a dict.
    """
    default = spec.default
    if default is dataclasses.MISSING and spec.default_factory is not dataclasses.MISSING:
        default = spec.default_factory()
    name = f"{subject} {spec.name}"
    if spec.name == "data":
        allowed = (str, dict) if "dict" in str(spec.type) else (str,)
        if not isinstance(value, allowed):
            raise ConfigError(name, f"{value!r} is not a path", "give the data path")
        return value
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, str):
        ok = isinstance(value, str)
    elif isinstance(default, tuple):
        ok = isinstance(value, (list, tuple)) and all(
            isinstance(item, (int, float)) and not isinstance(item, bool) for item in value
        )
        value = tuple(float(item) for item in value) if ok else value
    else:
        ok = True
    if not ok:
        expected = type(default).__name__
        raise ConfigError(name, f"{value!r} is not of type {expected}", f"give a {expected}")
    return value


def read_config_file(path: str | Path, **overrides: Any) -> dict[str, Any]:
    """The YAML mapping of a config file, relative ``data`` paths resolved against the file,
    then ``overrides`` applied (``None`` values are ignored).

    Raises:
        InputNotFoundError: The file does not exist.
        ConfigError: The file is not valid YAML or not a mapping.
    """
    file = Path(path)
    if not file.is_file():
        raise InputNotFoundError(str(file), "the training config does not exist", "check the path")
    try:
        content = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ConfigError(
            str(file), f"not valid YAML ({type(error).__name__})", "fix its syntax"
        ) from None
    if not isinstance(content, dict):
        raise ConfigError(str(file), "the file is not a mapping", "write key: value lines")
    data = content.get("data")
    if isinstance(data, str) and data and not Path(data).is_absolute():
        content["data"] = str((file.parent / data).resolve())
    content.update({key: value for key, value in overrides.items() if value is not None})
    return content
