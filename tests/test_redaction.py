"""Secrets never reach a log line, tracebacks included."""

from __future__ import annotations

import io
import json
import logging

from orchestrator.redaction import RedactingFilter, Secret, mask_url, redact, register


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
