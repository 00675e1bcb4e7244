"""Settings declared once: a dataclass field carries its flag's help text, allowed values and range.

`setting(...)` makes the field; `check_fields(config)` checks every field against its choices and range (one line
naming the flag); the command line builds one flag per field with help text from the same metadata
(`digitlab.cli.parser.add_setting_flags`). So a setting is one line of a dataclass, not a field, a flag, a help
default retyped by hand and a check (the pattern of flax's `config_flags` and nanoGPT's `configurator.py`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from digitlab.errors import ConfigError

Check = tuple[Callable[[Any], bool], str]  # (is the value allowed, what the allowed range is in words)

AT_LEAST_1: Check = (lambda v: v >= 1, "at least 1")
NON_NEGATIVE: Check = (lambda v: v >= 0, ">= 0")
POSITIVE: Check = (lambda v: v > 0, "positive")
UNIT_HALF_OPEN: Check = (lambda v: 0 <= v < 1, "in [0, 1)")
UNIT_OPEN: Check = (lambda v: 0 < v < 1, "in (0, 1)")


def setting(
    default: Any = None,
    help: str = "",
    *,
    choices: Sequence[str] | None = None,
    check: Check | None = None,
    unset: str | None = None,
    metavar: str | None = None,
    group: str | None = None,
) -> Any:
    """A dataclass field that is also a command-line setting.

    Args:
        default: The field's default.
        help: The flag's help text, without its default (generated); "" for a field with no flag of its own.
        choices: The allowed values (strings).
        check: (predicate, range in words): a value the predicate rejects is refused as "--flag must be RANGE".
        unset: What a default of None means, for the help ("the model's", "off").
        metavar: The flag's value name in the help.
        group: The help section the flag is listed in (None: the command's own).

    Returns:
        A `dataclasses.field` with that metadata.
    """
    meta = {"help": help, "choices": tuple(choices or ()), "check": check, "unset": unset, "metavar": metavar}
    return dataclasses.field(default=default, metadata={**meta, "group": group})


def flag_name(name: str) -> str:
    """The command-line flag of a field: `batch_size` → `--batch-size`."""
    return "--" + name.replace("_", "-")


def check_fields(config: Any) -> None:
    """Check every field of a settings dataclass against its choices and range (None is "not set": allowed).

    Args:
        config: A dataclass instance whose fields were made by `setting`.

    Raises:
        ConfigError: "--flag must be RANGE, got VALUE" for the first field out of range, in field order.
    """
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if value is None:
            continue
        choices, check = f.metadata.get("choices"), f.metadata.get("check")
        if choices and value not in choices:
            raise ConfigError(f"{flag_name(f.name)} must be one of {', '.join(choices)}, got {value!r}")
        if check is not None and not check[0](value):
            raise ConfigError(f"{flag_name(f.name)} must be {check[1]}, got {value}")


def shown(value: Any) -> str:
    """A default as the help shows it: on/off, 0.001 as 0.001, 16,000,000 with separators."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int) and value >= 10_000:
        return f"{value:,}"
    return str(value)


def default_text(f: dataclasses.Field) -> str:
    """A field's default as its flag's help gives it: "default 15", or its `unset` words for a None default."""
    unset = f.metadata.get("unset")
    return f"default {unset if f.default is None and unset else shown(f.default)}"
