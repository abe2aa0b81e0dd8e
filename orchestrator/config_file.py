"""The config file, read as plain data with every bound checked before anything parses deeply.

Size is bounded before parsing, nesting depth before composing: JSON by a cheap bracket scan
(Python's decoder recurses, and 2,000 levels exhaust the stack); YAML by walking the parser's
event stream, which stops at the first level past the limit (PyYAML's composer recurses, and
its scanner slows steeply with depth). The same walk refuses what YAML would silently turn
into something else: anchors and aliases (billion laughs), explicit tags, keys that are not
strings (YAML 1.1 reads an unquoted `on:` as `true:`) and duplicate keys (the last one would
win unseen). `document_problems` then checks the loaded data itself: finite numbers only,
string keys, no NUL bytes, bounded depth, whatever produced it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml
import yaml.resolver

from orchestrator.errors import ConfigError
from orchestrator.safe_files import read_regular
from orchestrator.schema_errors import join_path

__all__ = [
    "MAX_CONFIG_BYTES",
    "MAX_DEPTH",
    "document_problems",
    "loads_bounded_json",
    "read_config_file",
    "secret_variable_names",
]

MAX_CONFIG_BYTES = 1 << 20
MAX_DEPTH = 32
"""Nesting levels a config may use; the schema needs six, so this only stops pathological input."""

_STR_TAG = "tag:yaml.org,2002:str"
_TAG_WORDS = {
    "tag:yaml.org,2002:bool": "true or false",
    "tag:yaml.org,2002:int": "a number",
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:null": "null",
    "tag:yaml.org,2002:timestamp": "a date",
}


def read_config_file(path: Path, *, shown_as: str | None = None) -> Any:
    """Read YAML or JSON safely: a regular file of bounded size, UTF-8, bounded depth, string keys,
    no tags, anchors or aliases. Raises ConfigError naming the file, and the line where known."""
    name = shown_as or str(path)
    try:
        data = read_regular(path, field="config", shown=name, limit=MAX_CONFIG_BYTES)
    except ConfigError as exc:
        if exc.problems[0].endswith(" not found"):
            raise ConfigError(
                f"config: {name} not found; create it (see README 'Configuration') or pass --config"
            ) from None
        raise
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config: {name} is not UTF-8 (byte {exc.start}); save it as UTF-8") from None
    if path.suffix == ".json":
        return loads_bounded_json(text, f"config: {name}")
    return _load_yaml(text, name)


# --- JSON ------------------------------------------------------------------------------------------

_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


class _DuplicateKey(ValueError):
    pass


def loads_bounded_json(text: str, what: str, *, max_depth: int = MAX_DEPTH) -> Any:
    """`json.loads` refusing NaN/Infinity, duplicate keys and nesting past `max_depth` (checked first).

    Raises ConfigError starting with `what` (e.g. `config: deploy.json`)."""
    depth = 0
    for match in _BRACKET.finditer(_JSON_STRING.sub('""', text)):
        depth += 1 if match.group() in "[{" else -1
        if depth > max_depth:
            raise ConfigError(f"{what}: nested more than {max_depth} levels deep; a config needs far fewer")
    try:
        return json.loads(text, parse_constant=_refuse_constant, object_pairs_hook=_unique_keys)
    except _DuplicateKey as exc:
        raise ConfigError(f"{what}: the key {exc} appears twice in one mapping; keep one") from None
    except (ValueError, RecursionError) as exc:
        raise ConfigError(f"{what} is not valid JSON: {exc}") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows; write a finite number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(repr(key))
        out[key] = value
    return out


# --- YAML ------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Level:
    """One open mapping or sequence while walking the event stream."""

    path: str
    is_mapping: bool
    expecting_key: bool = True
    key: str = ""
    index: int = 0
    keys: set[str] = field(default_factory=set)

    def child_path(self) -> str:
        if not self.is_mapping:
            return f"{self.path}[{self.index}]"
        return join_path(self.path, self.key)

    def advance(self) -> None:
        if self.is_mapping:
            self.expecting_key = True
        else:
            self.index += 1


def _load_yaml(text: str, name: str) -> Any:
    try:
        _check_yaml_events(text, name)
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" line {where.line + 1}" if where is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"config: {name}{line} is not valid YAML: {problem}") from None
    except (ValueError, OverflowError) as exc:  # e.g. an integer of more than 4,300 digits
        raise ConfigError(f"config: {name}: a value cannot be read ({exc}); shorten it") from None


def _check_yaml_events(text: str, name: str) -> None:
    resolver = yaml.resolver.Resolver()
    stack: list[_Level] = []
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        at = f"config: {name}{_line(event)}"
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise ConfigError(f"{at}: YAML anchors and aliases are not allowed; write the values out")
        tag = getattr(event, "tag", None)
        implicit = getattr(event, "implicit", True)
        explicit = tag is not None and (implicit is False or implicit == (False, False))
        if explicit and not isinstance(event, (yaml.DocumentStartEvent, yaml.StreamStartEvent)):
            raise ConfigError(f"{at}: YAML tags ({tag}) are not allowed")
        parent = stack[-1] if stack else None
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            if parent is not None and parent.is_mapping and parent.expecting_key:
                raise ConfigError(f"{at}: {_shown(parent.path)} has a mapping or list as a key; keys must be strings")
            path = parent.child_path() if parent is not None else ""
            if len(stack) >= MAX_DEPTH:
                raise ConfigError(f"{at}: nested more than {MAX_DEPTH} levels deep; a config needs far fewer")
            stack.append(_Level(path, isinstance(event, yaml.MappingStartEvent)))
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            stack.pop()
            if stack:
                stack[-1].advance()
        elif isinstance(event, yaml.ScalarEvent) and parent is not None:
            if parent.is_mapping and parent.expecting_key:
                _check_key(event, parent, resolver, at)
            else:
                parent.advance()


def _check_key(event: yaml.ScalarEvent, level: _Level, resolver: yaml.resolver.Resolver, at: str) -> None:
    key = event.value
    resolved = resolver.resolve(yaml.ScalarNode, key, event.implicit)  # type: ignore[no-untyped-call]
    where = join_path(level.path, key)
    if resolved != _STR_TAG:
        reads_as = _TAG_WORDS.get(resolved, resolved)
        raise ConfigError(
            f"{at}: {where}: YAML reads the unquoted key {key!r} as {reads_as}, and keys must be strings; "
            f'quote it ("{key}":)'
        )
    if key in level.keys:
        raise ConfigError(f"{at}: {where}: duplicate key; keep one (YAML would silently use the last)")
    level.keys.add(key)
    level.key = key
    level.expecting_key = False


def _line(event: yaml.Event) -> str:
    mark = event.start_mark
    return f" line {mark.line + 1}" if mark is not None else ""


def _shown(path: str) -> str:
    return path or "the top level"


# --- the loaded data -------------------------------------------------------------------------------


def document_problems(document: Any) -> list[str]:
    """Problems of the loaded data a schema cannot see: non-string keys, NaN or infinite numbers,
    NUL bytes, values that are not plain data, nesting past MAX_DEPTH. Each names its field path."""
    return list(_walk(document, "", 0))


def _walk(value: Any, path: str, depth: int) -> Iterator[str]:
    where = path or "(top level)"
    if depth > MAX_DEPTH:
        yield f"{where}: nested more than {MAX_DEPTH} levels deep; a config needs far fewer"
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                yield (
                    f"{where}: the key {key!r} is not a string; keys must be strings "
                    f'(in YAML, quote keys such as "on", "yes" or "no")'
                )
                continue
            yield from _walk(item, join_path(path, key), depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, join_path(path, index), depth + 1)
    elif isinstance(value, float):
        if not math.isfinite(value):
            yield f"{where}: {value!r} is not a finite number; write a number within the field's range"
    elif isinstance(value, str):
        if "\x00" in value:
            yield f"{where}: contains a NUL byte; remove it"
    elif not (value is None or isinstance(value, (bool, int, date))):
        yield f"{where}: {type(value).__name__} is not plain data; write a string, number, list or mapping"


def secret_variable_names(document: Any) -> set[str]:
    """Every environment variable a document names as holding a secret (each `*_env_var` value),
    valid or not: read before validation, so the secrets are masked before any error is printed."""
    names: set[str] = set()
    pending: list[tuple[Any, int]] = [(document, 0)]
    while pending:
        node, depth = pending.pop()
        if depth > MAX_DEPTH:
            continue
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(key, str) and key.endswith("_env_var") and isinstance(value, str):
                    names.add(value)
                else:
                    pending.append((value, depth + 1))
        elif isinstance(node, list):
            pending.extend((item, depth + 1) for item in node)
    return names
