"""JSON Schema errors, told as a person would: `field.path: what is wrong; the fix`.

jsonschema's own messages name the validator, not the remedy; this turns each kind of violation
into one line that names the field (`canary.steps[2].weight`), what was found and what to write
instead, suggesting the nearest known key for a misspelt one.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from typing import Any

import jsonschema
import jsonschema.validators

__all__ = ["join_path", "schema_problems"]


def schema_problems(schema: Mapping[str, Any], document: Mapping[str, Any]) -> list[str]:
    """Every schema violation of `document`, each as `field.path: what is wrong; the fix`."""
    validator = _Validator(schema)
    errors = sorted(validator.iter_errors(document), key=lambda e: (list(map(str, e.absolute_path)), e.validator))
    return [_describe(error) for error in errors]


def _is_whole_number(checker: Any, instance: Any) -> bool:
    # JSON Schema counts 3.0 as an integer; the code then gets a float where it counts things.
    return isinstance(instance, int) and not isinstance(instance, bool)


_Validator = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_whole_number),
)


_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def join_path(path: str, key: Any) -> str:
    """`path.key`, `path[3]`, or `path['odd key']` for a key that would not read as one."""
    if isinstance(key, int) and not isinstance(key, bool):
        return f"{path}[{key}]"
    if isinstance(key, str) and _PLAIN_KEY.match(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{key!r}]"


def _path(parts: Iterable[Any]) -> str:
    out = ""
    for part in parts:
        out = join_path(out, part)
    return out or "(top level)"


_TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
}


def _describe(error: jsonschema.ValidationError) -> str:
    where = _path(error.absolute_path)
    kind = error.validator
    value: Any = error.validator_value
    schema_node = error.schema if isinstance(error.schema, dict) else {}
    if kind == "required":
        missing = re.findall(r"'([^']+)' is a required property", error.message)
        field = missing[0] if missing else "?"
        full = f"{where}.{field}" if error.absolute_path else field
        return f"{full}: required field is missing; add it"
    if kind == "additionalProperties":
        allowed = sorted(schema_node.get("properties", {}))
        extras = sorted(map(str, set(error.instance) - set(allowed))) if isinstance(error.instance, dict) else []
        lines = []
        for extra in extras:
            full = join_path(where if error.absolute_path else "", extra)
            close = difflib.get_close_matches(extra, allowed, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(allowed)}"
            lines.append(f"{full}: unknown field; remove it ({hint})")
        return "\n  - ".join(lines) if lines else f"{where}: unknown field"
    if kind == "enum":
        return f"{where}: {error.instance!r} is not allowed; use one of {', '.join(map(str, value))}"
    if kind == "type":
        want = _TYPE_NAMES.get(str(value), str(value))
        got = f"{where}: should be {want}, got {type(error.instance).__name__} {error.instance!r}"
        return got + _number_as_text_hint(str(value), error.instance)
    if kind in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        lo = schema_node.get("minimum", schema_node.get("exclusiveMinimum"))
        hi = schema_node.get("maximum", schema_node.get("exclusiveMaximum"))
        lo_word = "from" if "minimum" in schema_node else "greater than"
        hi_word = "to" if "maximum" in schema_node else "below"
        bounds = f"{lo_word} {lo}" if lo is not None else ""
        if hi is not None:
            bounds += f" {hi_word} {hi}"
        return f"{where}: {error.instance!r} is out of range; should be {bounds.strip()}"
    if kind == "pattern":
        return f"{where}: {error.instance!r} {_pattern_hint(str(value))}"
    if kind in ("minItems", "minLength"):
        return f"{where}: must not be empty"
    if kind == "uniqueItems":
        return f"{where}: has duplicate entries; list each once"
    if kind == "oneOf":
        options = [sorted(o.get("required", [])) for o in value if isinstance(o, dict)]
        names = " or ".join("+".join(o) for o in options if o)
        return f"{where}: set exactly one of {names}"
    if kind == "maxLength":
        return f"{where}: is longer than {value} characters; shorten it"
    if kind == "maxItems":
        return f"{where}: has more than {value} entries; list at most {value}"
    if kind == "propertyNames":
        return f"{where}: a key is not allowed here ({error.message}); use the documented names"
    return f"{where}: {error.message}"


_EXPONENT = re.compile(r"^[-+]?[0-9]+(\.[0-9]*)?[eE][-+]?[0-9]+$")


def _number_as_text_hint(want: str, instance: Any) -> str:
    if want not in ("number", "integer") or not isinstance(instance, str) or not _EXPONENT.match(instance):
        return ""
    mantissa, exponent = re.split("[eE]", instance)
    sign = "" if exponent.startswith(("-", "+")) else "+"
    written = f"{mantissa if '.' in mantissa else mantissa + '.0'}e{sign}{exponent}"
    return f" (YAML 1.1 reads {instance} as text; write it as {written}, or as a plain number)"


def _pattern_hint(pattern: str) -> str:
    hints = {
        "^[A-Za-z_][A-Za-z0-9_]*$": "should name an environment variable (letters, digits, _), e.g. MY_TOKEN",
        "^https?://[^\\s]+$": "should be an http:// or https:// URL",
        "^/": "should be a path starting with '/'",
    }
    for key, hint in hints.items():
        if pattern == key:
            return hint
    if pattern.startswith(("^127", "^(127")):
        return "should be 127.0.0.1, localhost or 0.0.0.0 and a port from 1 to 65535, like 127.0.0.1:8080"
    return f"does not match the expected form ({pattern})"
