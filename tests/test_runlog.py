"""The run's log keeps what the job log showed, bounded: the first lines, the newest, and a note of the gap."""

from __future__ import annotations

import logging
import re

import pytest

from orchestrator.redaction import Secret
from orchestrator.runlog import LogLimits, RunLog

SMALL = LogLimits(head_lines=3, max_lines=10, max_bytes=4096, max_line_bytes=200)
GAP = re.compile(r"^… (\d+) log line\(s\) \((\d+) bytes\) left out here to keep the result small")


def _messages(log: RunLog) -> list[str]:
    return [e.message for e in log.entries]


def test_a_short_run_keeps_every_line_and_no_note() -> None:
    log = RunLog(limits=SMALL)
    for n in range(10):
        log.info(f"line {n}")
    assert _messages(log) == [f"line {n}" for n in range(10)]


def test_a_long_run_keeps_the_first_lines_the_newest_and_says_how_many_were_left_out() -> None:
    log = RunLog(limits=SMALL)
    for n in range(1000):
        log.info(f"line {n}")

    messages = _messages(log)
    assert messages[:3] == ["line 0", "line 1", "line 2"]
    assert messages[4:] == [f"line {n}" for n in range(993, 1000)]
    gap = GAP.match(messages[3])
    assert gap is not None, messages[3]
    assert int(gap.group(1)) == 990
    assert int(gap.group(2)) == sum(len(f"line {n}") for n in range(3, 993))
    assert "the job log has every line" in messages[3]
    assert log.entries[3].level == "warn"
    assert log.entries[2].timestamp <= log.entries[3].timestamp <= log.entries[4].timestamp


def test_the_lines_modules_log_while_capturing_are_bounded_too() -> None:
    """The defect: `capturing` kept every `orchestrator.*` line, so a chatty step grew the result without end."""
    log = RunLog(limits=SMALL)
    chatty = logging.getLogger("orchestrator.tests.chatty")
    with log.capturing():
        log.info("deploy v2 started")
        for n in range(5000):
            chatty.info("upgrade progress %d", n)
        log.error("deploy v2 failed")

    messages = _messages(log)
    assert len(messages) == SMALL.max_lines + 1
    assert messages[0] == "deploy v2 started"
    assert messages[-1] == "deploy v2 failed"
    assert messages[-2] == "upgrade progress 4999"
    gap = GAP.match(messages[3])
    assert gap is not None and int(gap.group(1)) == 5002 - SMALL.max_lines


def test_the_kept_bytes_stay_within_the_bound() -> None:
    log = RunLog(limits=SMALL)
    for n in range(300):
        log.warn(f"{n:04d} " + "x" * 150)
    kept = [e.message for e in log.entries if not GAP.match(e.message)]
    assert sum(len(m.encode()) for m in kept) <= SMALL.max_bytes
    assert kept[-1].startswith("0299 ")


def test_a_long_line_is_cut_after_redaction_so_no_part_of_a_secret_shows() -> None:
    secret = Secret("runlog-canary-" + "7" * 40, "token").reveal()
    log = RunLog(limits=SMALL)
    # The secret straddles the cut: cutting before masking would leave its first part in the log.
    log.info("x" * 150 + secret + "y" * 500)

    (message,) = _messages(log)
    assert len(message.encode()) <= SMALL.max_line_bytes
    assert message.endswith(f"(a line of {150 + 3 + 500} bytes, cut to {SMALL.max_line_bytes})")
    assert "runlog-canary" not in message and "7777" not in message
    assert message.startswith("x" * 150 + "***y")


def test_limits_that_cannot_hold_their_first_lines_are_refused() -> None:
    with pytest.raises(ValueError, match="head_lines < max_lines"):
        LogLimits(head_lines=10, max_lines=10)
    with pytest.raises(ValueError, match="max_line_bytes <= max_bytes / 4"):
        LogLimits(max_bytes=1000, max_line_bytes=500)
