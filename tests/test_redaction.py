"""Secrets never reach a log line, tracebacks included."""

from __future__ import annotations

import io
import json
import logging
import random

from orchestrator.redaction import (
    _URL_PASSWORD,
    RedactingFilter,
    Secret,
    _mask_url_passwords,
    mask_url,
    redact,
    redact_data,
    register,
)


def test_a_traceback_is_redacted_before_any_handler_formats_it() -> None:
    secret = Secret("tb-canary-5e1f9a", "token")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("test.redaction")
    logger.addHandler(handler)
    try:
        raise RuntimeError(f"request failed with {secret.reveal()}")
    except RuntimeError:
        logger.exception("delivery failed for %s", secret.reveal())
    finally:
        logger.removeHandler(handler)
    assert "tb-canary-5e1f9a" not in stream.getvalue()
    assert "RuntimeError: request failed with ***" in stream.getvalue()


def test_urls_keep_who_and_where_but_not_the_password() -> None:
    assert (
        mask_url("postgresql://app:s3cr3t-pw@db.example.com:5432/shop")
        == "postgresql://app:***@db.example.com:5432/shop"
    )
    assert redact("dsn postgresql://app:other-pw@h/db failed") == "dsn postgresql://app:***@h/db failed"


def test_a_multi_line_secrets_quoted_lines_are_masked_when_json_escaped() -> None:
    kubeconfig = 'users:\n- name: ci\n  user:\n    token: "abc123SECRETtokenvalue-7f1e"\n'
    register(kubeconfig)
    leaked = json.dumps('token: "abc123SECRETtokenvalue-7f1e"')
    assert "abc123SECRETtokenvalue-7f1e" not in redact(leaked)


def test_url_passwords_are_masked_exactly_as_the_pattern_says() -> None:
    """The search from each "://" gives what the one-pattern scan gave, on texts built to trip it up:
    schemes without letters, "://" inside a password, URLs back to back, whitespace and @ anywhere."""
    rng = random.Random(14)
    pieces = ("http", "a", "1", "+", ".", "-", "_", "://", ":", "/", "u", "pw", "@", " ", "\n", "://u:p@")
    texts = ["".join(rng.choice(pieces) for _ in range(rng.randrange(1, 16))) for _ in range(30_000)]
    texts += ["1://u:a://v:w@", "a://x:y@b://u:p@", "http://u:p://x:y@", "_https://user:pw@h", "1http://u:p@h"]
    for text in texts:
        assert _mask_url_passwords(text) == _URL_PASSWORD.sub(lambda m: m.group(1) + "***@", text), text


def test_data_is_redacted_string_by_string_whatever_the_scan_of_them_all_finds() -> None:
    register("canary-data-6b2d")
    data = {
        "digests": {f"db/V{n}__t.sql": f"{n:064x}" for n in range(3_000)},  # past one scan batch
        "canary-data-6b2d": ["x canary-data-6b2d y", ("canary-", "data-6b2d"), "postgresql://u:pw-77@h/db"],
        "kv": "host=h password=hunter22 port=5",
        "nested": [{"k": "canary-data-6b2dcanary-data-6b2d"}, 7, None, 1.5],
    }

    def one_by_one(value: object) -> object:
        if isinstance(value, str):
            return redact(value)
        if isinstance(value, dict):
            return {one_by_one(k): one_by_one(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [one_by_one(v) for v in value]
        return value

    redacted = redact_data(data)
    assert redacted == one_by_one(data)
    assert "canary-data-6b2d" not in json.dumps(redacted) and "hunter22" not in json.dumps(redacted)
    assert redacted["***"][1] == ["canary-", "data-6b2d"]  # each string is masked on its own, as before
