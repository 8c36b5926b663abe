"""The presets shipped with the package: named conditions for mail nobody needs to keep.

Each preset is a TOML file in ``rules/presets/`` holding a ``description`` and a list of
``[[any]]`` alternatives; each alternative has a ``label`` (shown in reasons) and ordinary
conditions. A preset matches when any alternative does. They are compiled once, on first
use, with the same parser as the rules, so a broken preset fails loudly at ``rules check``
and in the test suite, never while mail flows.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from importlib import resources

from ..config import KeyLocator, Source
from ..errors import ConfigError
from .conditions import AllOf, Condition, Preset
from .parse import ConditionParser, unknown_key

_PACKAGE = "postfix_archiver.rules"
_DIRECTORY = "presets"
_TOP_KEYS = ("description", "any")


@dataclass(frozen=True)
class PresetInfo:
    name: str
    description: str
    labels: tuple[str, ...]


def preset_names() -> tuple[str, ...]:
    folder = resources.files(_PACKAGE).joinpath(_DIRECTORY)
    return tuple(
        sorted(
            entry.name.removesuffix(".toml")
            for entry in folder.iterdir()
            if entry.name.endswith(".toml")
        )
    )


def load_preset(name: str) -> Preset:
    """The compiled preset ``name``; ``KeyError`` (with a helpful message) if none."""
    return _load(name)[0]


def preset_info(name: str) -> PresetInfo:
    return _load(name)[1]


@functools.cache
def _load(name: str) -> tuple[Preset, PresetInfo]:
    if name not in preset_names():
        raise KeyError(f"unknown preset {name!r} (known: {', '.join(preset_names())})")
    resource = resources.files(_PACKAGE).joinpath(_DIRECTORY, f"{name}.toml")
    path = f"{_PACKAGE.replace('.', '/')}/{_DIRECTORY}/{name}.toml"
    return compile_preset_text(name, resource.read_text(encoding="utf-8"), path)


def compile_preset_text(name: str, text: str, path: str) -> tuple[Preset, PresetInfo]:
    """Compile preset ``name`` from TOML ``text``; errors name ``path``, line and key."""
    source = Source(path, KeyLocator(text))
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"preset is not valid TOML: {exc}", path=path) from None
    return _compile(name, data, source)


def _compile(name: str, data: dict[str, object], source: Source) -> tuple[Preset, PresetInfo]:
    for key in data:
        if key not in _TOP_KEYS:
            raise unknown_key(source, (), key, _TOP_KEYS)
    description = data.get("description")
    alternatives = data.get("any")
    if not isinstance(description, str) or not description:
        raise source.error(("description",), "a preset needs a description")
    if not isinstance(alternatives, list) or not alternatives:
        raise source.error(("any",), "a preset needs [[any]] alternatives")
    # Presets describe message content and senders; local_domains belong to the site, so
    # a shipped preset cannot ask for a direction.
    parser = ConditionParser(source, local_domains=(), presets=None)
    parts: list[Condition] = []
    labels: list[str] = []
    for i, table in enumerate(alternatives):
        path = ("any", i)
        if not isinstance(table, dict):
            raise source.error(path, "must be a table")
        label = table.get("label")
        if not isinstance(label, str) or not label:
            raise source.error(path, "each alternative needs a label")
        conditions = parser.conditions(table, path, other_keys=("label",))
        if not conditions:
            raise source.error(path, "an alternative needs at least one condition")
        parts.append(conditions[0] if len(conditions) == 1 else AllOf(conditions))
        labels.append(label)
    preset = Preset(name, parts, labels)
    return preset, PresetInfo(name, description, tuple(labels))
