"""Label and field selectors as the API server parses them (`k8s.io/apimachinery/pkg/labels`, `fields`).

Label selectors: `a=b`, `a==b`, `a!=b`, `a in (b,c)`, `a notin (b,c)`, `a` (exists), `!a` (absent),
joined by commas. Field selectors: `f=v`, `f==v`, `f!=v` over the fields a resource supports (for
Deployments and Services: `metadata.name` and `metadata.namespace`); any other field is refused as
the API server refuses it (HTTP 400, `field label not supported: <field>`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["FieldTerm", "LabelTerm", "SelectorError", "fields_match", "labels_match", "parse_fields", "parse_labels"]

SUPPORTED_FIELDS = ("metadata.name", "metadata.namespace")
_KEY = r"(?:[a-z0-9A-Z.\-]+/)?[a-zA-Z0-9](?:[-a-zA-Z0-9_.]*[a-zA-Z0-9])?"
_SET = re.compile(rf"^\s*({_KEY})\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQUALITY = re.compile(rf"^\s*({_KEY})\s*(==|!=|=)\s*([-a-zA-Z0-9_.]*)\s*$")
_EXISTS = re.compile(rf"^\s*(!?)\s*({_KEY})\s*$")


class SelectorError(ValueError):
    """The selector does not parse; the message is the API server's."""


@dataclass(frozen=True)
class LabelTerm:
    key: str
    op: str
    """`in`, `notin`, `exists`, `!`."""
    values: frozenset[str] = frozenset()


@dataclass(frozen=True)
class FieldTerm:
    field: str
    equal: bool
    value: str


def _terms(text: str) -> list[str]:
    """Split at commas outside parentheses."""
    out, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            out.append(text[start:i])
            start = i + 1
    out.append(text[start:])
    return [t for t in out if t.strip()]


def parse_labels(text: str) -> list[LabelTerm]:
    terms = []
    for raw in _terms(text):
        if (m := _SET.match(raw)) is not None:
            values = frozenset(v.strip() for v in m.group(3).split(",") if v.strip())
            terms.append(LabelTerm(m.group(1), m.group(2), values))
        elif (m := _EQUALITY.match(raw)) is not None:
            terms.append(LabelTerm(m.group(1), "notin" if m.group(2) == "!=" else "in", frozenset({m.group(3)})))
        elif (m := _EXISTS.match(raw)) is not None:
            terms.append(LabelTerm(m.group(2), "!" if m.group(1) else "exists"))
        else:
            raise SelectorError(f"unable to parse requirement: found '{raw.strip()}', expected: identifier")
    return terms


def labels_match(terms: list[LabelTerm] | Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """`terms` parsed, or a `matchLabels` map (a Service or Deployment selector)."""
    if isinstance(terms, Mapping):
        return all(labels.get(k) == v for k, v in terms.items())
    for term in terms:
        present = term.key in labels
        if term.op == "in" and (not present or labels[term.key] not in term.values):
            return False
        if term.op == "notin" and present and labels[term.key] in term.values:
            return False
        if (term.op == "exists") != present and term.op in ("exists", "!"):
            return False
    return True


def parse_fields(text: str) -> list[FieldTerm]:
    terms = []
    for raw in _terms(text):
        m = re.match(r"^\s*([^=!\s]+)\s*(==|!=|=)\s*(.*?)\s*$", raw)
        if m is None:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{raw.strip()}'")
        field, op, value = m.groups()
        if field not in SUPPORTED_FIELDS:
            raise SelectorError(f"field label not supported: {field}")
        terms.append(FieldTerm(field, op != "!=", value))
    return terms


def fields_match(terms: list[FieldTerm], obj: Mapping[str, Any]) -> bool:
    metadata = obj.get("metadata") or {}
    values = {"metadata.name": metadata.get("name", ""), "metadata.namespace": metadata.get("namespace", "")}
    return all((values[t.field] == t.value) == t.equal for t in terms)
