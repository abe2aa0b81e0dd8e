"""Hypothesis strategies for bad input, shared by the property tests and `bench/fuzz.py`.

Documents over the schema (the base config with one field swapped for something random) and
beyond it (arbitrary nested data, non-string keys, NaN and infinities, huge numbers), config
file text (valid YAML mutated, and bytes from YAML's and JSON's punctuation), CLI argument
lists, odd file names and kinds, and event payloads. `check_problems` is the property every
refusal must have: each problem starts with the field path it is about.
"""

from __future__ import annotations

import copy
import json
import os
import re
import socket
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from orchestrator.config import INPUTS, schema
from tests.workspace import base_config

__all__ = [
    "FILE_KINDS",
    "arguments",
    "check_problems",
    "config_texts",
    "documents",
    "event_payloads",
    "file_names",
    "make_file",
]

_NUMBERS = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 1, 65535, 65536, 99999, 1e12, 1e308, float("nan"), float("inf"), -float("inf"), 2.0]),
)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    _NUMBERS,
    st.text(max_size=20),
    st.sampled_from(["", "on", "yes", "127.0.0.1:99999", "../../etc/passwd", "\x00", "/health", "http://x"]),
)
_KEYS = st.one_of(
    st.text(max_size=12),
    st.sampled_from(sorted(schema()["properties"])),
    st.integers(),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=True),
)
_ANY = st.recursive(
    _SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(_KEYS, children, max_size=4),
    ),
    max_leaves=20,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out += _paths(value, (*prefix, index))
    return out


_BASE = base_config()
_BASE_PATHS = _paths(_BASE)
_EXTRA_PATHS: list[tuple[Any, ...]] = [
    ("gates", "max_age_hours"),
    ("deploy_lock", "wait_seconds"),
    ("verification", "deadline_seconds"),
    ("verification", "retries"),
    ("migrations", "lock_timeout_seconds"),
    ("notifications", "on"),
    ("deployment_config", "canary"),
    ("deployment_config", "local", "replicas"),
    ("deployment_config", "local", "env"),
    ("metrics", "textfile"),
    ("odoo",),
]


@st.composite
def _mutated(draw: st.DrawFn) -> Any:
    doc = copy.deepcopy(_BASE)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(_BASE_PATHS + _EXTRA_PATHS))
        value = draw(_ANY)
        node: Any = doc
        for key in path[:-1]:
            if isinstance(node, dict):
                node = node.setdefault(key, {})
            elif isinstance(node, list) and isinstance(key, int) and key < len(node):
                node = node[key]
            else:
                break
        else:
            if isinstance(node, dict):
                if draw(st.booleans()) or path[-1] not in node:
                    node[path[-1]] = value
                else:
                    del node[path[-1]]
            elif isinstance(node, list) and isinstance(path[-1], int) and path[-1] < len(node):
                node[path[-1]] = value
    return doc


def documents() -> st.SearchStrategy[Any]:
    """Loaded config documents: mostly the base config with fields swapped, sometimes anything at all."""
    return st.one_of(_mutated(), _mutated(), _mutated(), _ANY)


_YAML_BASE = yaml.safe_dump(_BASE)
_PUNCTUATION = "[]{}:,-?&*!|>'\"%@`#\n \t.0123456789eE+naifNo~\\"


@st.composite
def _mutated_text(draw: st.DrawFn) -> str:
    text = _YAML_BASE if draw(st.booleans()) else json.dumps(_BASE, indent=1)
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        at = draw(st.integers(min_value=0, max_value=len(text)))
        cut = draw(st.integers(min_value=0, max_value=8))
        insert = draw(
            st.text(alphabet=_PUNCTUATION, max_size=6) | st.sampled_from(["on: x\n", ".nan", "[" * 50, "\x00"])
        )
        text = text[:at] + insert + text[at + cut :]
    return text


def config_texts() -> st.SearchStrategy[str]:
    """Config file text: the base config as YAML or JSON, mutated; or punctuation soup."""
    return st.one_of(
        _mutated_text(),
        _mutated_text(),
        st.text(alphabet=_PUNCTUATION, max_size=200),
        st.text(max_size=100),
        st.builds(lambda n, s: s * n, st.integers(min_value=1, max_value=3000), st.sampled_from(["[", "{a: ", "- "])),
    )


_FLAGS = [f"--{name}" for name in INPUTS] + ["--github-token=x", "--conf", "-h", "--", "run", "local", "demo"]


def arguments() -> st.SearchStrategy[list[str]]:
    """CLI argument lists: known flags with random values, unknown flags, bare words."""
    value = st.one_of(
        st.text(max_size=15).filter(lambda s: "\x00" not in s),
        st.sampled_from(["²", "٣", "deploy.json", "preview", "-1", "99999999999", "v1", "run-1", ""]),
    )
    return st.lists(st.one_of(st.sampled_from(_FLAGS), value), max_size=8).filter(
        lambda a: not ({"-h", "--help", "demo", "local"} & set(a[:1] + a))
    )


def file_names() -> st.SearchStrategy[str]:
    """Odd but legal file names: spaces, quotes, Unicode, leading dashes, very long."""
    return st.one_of(
        st.text(
            alphabet=st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)), min_size=1, max_size=40
        ),
        st.sampled_from(["-rf", " ", "a b.json", "ü.yml", "'; rm -rf /", "x" * 255, ".", "..", "deploy.yml"]),
    ).filter(lambda n: n not in (".", "..") and len(os.fsencode(n)) <= 255)


FILE_KINDS = ("regular", "directory", "fifo", "self-loop", "dangling", "device", "socket", "empty")


def make_file(path: Path, kind: str, content: bytes = b"") -> socket.socket | None:
    """Create `path` as `kind`; a socket kind returns the bound socket, for the caller to close."""
    if kind == "regular":
        path.write_bytes(content)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "self-loop":
        path.symlink_to(path)
    elif kind == "dangling":
        path.symlink_to(path.parent / "missing-target")
    elif kind == "device":
        path.symlink_to("/dev/zero")
    elif kind == "socket":
        # AF_UNIX paths are limited to ~108 bytes: bind a short name, then give it the odd one.
        sock = socket.socket(socket.AF_UNIX)
        short = Path(tempfile.mkdtemp(prefix="s")) / "s"
        sock.bind(str(short))
        os.rename(short, path)
        short.parent.rmdir()
        return sock
    return None


def event_payloads() -> st.SearchStrategy[str]:
    """GITHUB_EVENT_PATH contents: plausible payloads with odd numbers and shas, deep nesting, junk."""
    plausible = st.fixed_dictionaries(
        {"number": _SCALARS, "pull_request": st.fixed_dictionaries({"head": st.fixed_dictionaries({"sha": _SCALARS})})}
    ).map(lambda d: json.dumps(d, allow_nan=True))
    return st.one_of(
        plausible,
        _ANY.map(lambda d: json.dumps(d, allow_nan=True, default=str) if _json_keys(d) else "{}"),
        st.builds(lambda n: "[" * n, st.integers(min_value=1, max_value=5000)),
        st.text(max_size=50),
    )


def _json_keys(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, (str, int, float, bool)) or k is None for k in value) and all(
            _json_keys(v) for v in value.values()
        )
    if isinstance(value, list):
        return all(_json_keys(v) for v in value)
    return True


_PATH_HEAD = re.compile(r"^(?P<head>[^:]+?)(?: line \d+)?:")
_KNOWN_HEADS = {*schema()["properties"], "config", "(top level)", "command line", "GITHUB_WORKSPACE", *INPUTS}


def check_problems(problems: Sequence[str], document: Any = None) -> None:
    """Every problem names a field path first: a schema section, an input, `config`, or a key of `document`."""
    assert problems, "a ConfigError must carry at least one problem"
    keys = {str(k) for k in document} if isinstance(document, dict) else set()
    for problem in problems:
        assert "Traceback" not in problem
        match = _PATH_HEAD.match(problem)
        assert match is not None, f"no field path in {problem!r}"
        head = re.split(r"[.\[]", match["head"], maxsplit=1)[0].removeprefix("--")
        named_key = any(problem.startswith((key, f"[{key!r}]")) for key in keys if key) or any(
            problem.startswith(f"[{key!r}]") for key in keys
        )
        assert head in _KNOWN_HEADS or named_key, f"unexpected field in {problem!r}"
