"""Fuzz the config loader, the CLI and event payloads; count tracebacks, hangs and leaked secrets.

    python bench/fuzz.py [--scale 1.0]

Hypothesis drives the loader and the event reader in-process (fast), atheris (coverage-guided,
when installed: `pip install -e '.[fuzz]'`) mutates raw config bytes in a subprocess, and a sample
of argument lists and payloads goes through the real CLI in subprocesses. Every input must end
accepted or refused with a ConfigError whose problems each start with a field path; anything else
is a traceback, anything over the per-input limit a hang, and a canary secret in any message a
leak. The peer column runs the same texts through bare PyYAML/json + jsonschema: what this
loader exists to prevent. Last line: `fuzz: inputs=N tracebacks=T hangs=H secrets=S`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import jsonschema  # noqa: E402
import yaml  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from orchestrator.cli import raw_inputs  # noqa: E402
from orchestrator.config import load_request, parse_config, read_config_file, schema  # noqa: E402
from orchestrator.errors import ConfigError  # noqa: E402
from orchestrator.github_event import read_event  # noqa: E402
from orchestrator.redaction import Secret, redact  # noqa: E402
from tests.fuzzing import (  # noqa: E402
    FILE_KINDS,
    arguments,
    check_problems,
    config_texts,
    documents,
    event_payloads,
    file_names,
    make_file,
)
from tests.workspace import base_config, write_config  # noqa: E402

CANARY = "fzCanary8Hq\"pw\\'Zr5Kq ß"
CANARY_RUNS = ["fzCanary8Hq", "Zr5Kq"]
CANARY_DSN = "host=127.0.0.1 port=9 user=u password='" + CANARY.replace("\\", "\\\\").replace("'", "\\'") + "'"
PER_INPUT_SECONDS = 5
PEER_SECONDS = 2


@dataclass
class Tally:
    name: str
    tried: int = 0
    refused: int = 0
    accepted: int = 0
    tracebacks: int = 0
    hangs: int = 0
    secrets: int = 0
    seconds: float = 0.0
    peer: str = ""
    broke: list[str] = field(default_factory=list)

    def note(self, kind: str, detail: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        if len(self.broke) < 3:
            self.broke.append(f"{kind}: {detail[-600:]}")


class _Hang(Exception):
    pass


def _alarm(_signum: int, _frame: Any) -> None:
    raise _Hang


def _in_process(tally: Tally, work: Callable[[], Any], describe: Callable[[], str]) -> None:
    """Run one input under a per-input alarm and classify how it ended."""
    tally.tried += 1
    signal.setitimer(signal.ITIMER_REAL, PER_INPUT_SECONDS)
    try:
        outcome = work()
    except _Hang:
        tally.note("hangs", describe())
        return
    except ConfigError as exc:
        signal.setitimer(signal.ITIMER_REAL, 0)
        tally.refused += 1
        try:
            check_problems(exc.problems, getattr(exc, "_document", None))
        except AssertionError as bad:
            tally.note("tracebacks", f"refusal without a field path: {bad} <- {describe()}")
        if any(run in redact(str(exc)) for run in CANARY_RUNS):
            tally.note("secrets", f"{redact(str(exc))[:300]} <- {describe()}")
        return
    except Exception:
        signal.setitimer(signal.ITIMER_REAL, 0)
        tally.note("tracebacks", f"{traceback.format_exc()} <- {describe()}")
        return
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    tally.accepted += 1
    del outcome


def _drive(strategy: st.SearchStrategy[Any], count: int, test: Callable[[Any], None]) -> None:
    @settings(
        max_examples=count,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def run(example: Any) -> None:
        test(example)

    run()


def fuzz_documents(count: int, workspace: Path) -> Tally:
    tally = Tally("loader: documents")

    def one(document: Any) -> None:
        def work() -> Any:
            try:
                return parse_config(document, workspace)
            except ConfigError as exc:
                exc._document = document  # type: ignore[attr-defined]
                raise

        _in_process(tally, work, lambda: repr(document)[:300])

    _drive(documents(), count, one)
    return tally


def _peer_fails(text: str, suffix: str) -> bool:
    """Does bare PyYAML/json + jsonschema end this text in something other than a clean error?"""
    try:
        data = json.loads(text) if suffix == ".json" else yaml.safe_load(text)
        jsonschema.Draft202012Validator(schema()).is_valid(data)
    except (yaml.YAMLError, ValueError):
        return False
    except Exception:
        return True
    return False


def fuzz_texts(count: int, workspace: Path) -> Tally:
    tally = Tally("loader: config text")
    peer_failures = 0

    def one(example: tuple[str, str]) -> None:
        nonlocal peer_failures
        text, suffix = example
        path = workspace / f"fuzz{suffix}"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")

        def work() -> Any:
            document = read_config_file(path)
            try:
                return parse_config(document, workspace)
            except ConfigError as exc:
                exc._document = document  # type: ignore[attr-defined]
                raise

        _in_process(tally, work, lambda: repr(text)[:300])
        signal.setitimer(signal.ITIMER_REAL, PEER_SECONDS)
        try:
            peer_failures += _peer_fails(text, suffix)
        except _Hang:
            peer_failures += 1
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)

    _drive(st.tuples(config_texts(), st.sampled_from([".yml", ".json"])), count, one)
    tally.peer = f"peer, bare PyYAML/json + jsonschema: {peer_failures} crash or take over {PEER_SECONDS} s"
    return tally


def fuzz_arguments(count: int, workspace: Path) -> Tally:
    tally = Tally("cli: argument lists")
    env = {"GITHUB_WORKSPACE": str(workspace)}

    def one(args: list[str]) -> None:
        args = [CANARY if a == "v1" else a for a in args]

        def work() -> Any:
            raw = raw_inputs(args, env)
            return load_request({**raw, "config": raw.get("config", "deploy.json")}, env)

        _in_process(tally, work, lambda: repr(args)[:300])

    _drive(arguments(), count, one)
    return tally


def fuzz_files(count: int) -> Tally:
    tally = Tally("loader: file names/kinds")

    def one(example: tuple[str, str, str]) -> None:
        name, kind, role = example
        with tempfile.TemporaryDirectory() as folder, contextlib.ExitStack() as stack:
            sock = make_file(Path(folder) / name, kind, b"{}")
            if sock is not None:
                stack.callback(sock.close)
            config = base_config()
            if role == "migrations":
                config["artifacts"]["migrations"] = [name]

            def work() -> Any:
                if role == "config":
                    return load_request({"config": name, "version": "v1"}, {"GITHUB_WORKSPACE": folder})
                return parse_config(config, Path(folder))

            _in_process(tally, work, lambda: f"{name!r} as {kind} ({role})")

    _drive(st.tuples(file_names(), st.sampled_from(FILE_KINDS), st.sampled_from(["config", "migrations"])), count, one)
    return tally


def fuzz_events(count: int, workspace: Path) -> Tally:
    tally = Tally("events: payloads")

    def one(payload: str) -> None:
        path = workspace / "event.json"
        path.write_text(payload, encoding="utf-8", errors="surrogatepass")

        def work() -> Any:
            event = read_event({"GITHUB_EVENT_PATH": str(path)})
            if event.pr_number is not None and not (type(event.pr_number) is int and event.pr_number > 0):
                raise AssertionError(f"pr_number {event.pr_number!r}")
            return event

        _in_process(tally, work, lambda: repr(payload)[:300])

    _drive(event_payloads(), count, one)
    return tally


def _cli(workspace: Path, args: list[str], extra: dict[str, str]) -> tuple[int | None, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(workspace), "GITHUB_WORKSPACE": str(workspace)}
    env |= {"GITHUB_ACTIONS": "true", "DATABASE_URL": CANARY_DSN, "AGENTBENCH_TOKEN": CANARY, **extra}
    try:
        done = subprocess.run(
            [sys.executable, str(ROOT / "entrypoint.py"), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired:
        return None, "timed out"
    output = "\n".join(line for line in (done.stdout + done.stderr).splitlines() if not line.startswith("::add-mask::"))
    return done.returncode, output


def fuzz_cli_processes(count: int, workspace: Path) -> Tally:
    """A sample through the real entrypoint: argument lists and event payloads, with canary secrets set."""
    tally = Tally("cli: real processes")

    def check(code: int | None, output: str, what: str) -> None:
        tally.tried += 1
        if code is None:
            tally.note("hangs", what)
        elif "Traceback" in output or code not in (0, 1, 2, 3):
            tally.note("tracebacks", f"exit {code}: {output[-400:]} <- {what}")
        else:
            tally.refused += code == 2
            tally.accepted += code != 2
        if any(run in output for run in CANARY_RUNS):
            tally.note("secrets", f"{output[-300:]} <- {what}")

    def one(example: tuple[list[str], str]) -> None:
        args, payload = example
        args = [CANARY if a == "v1" else a for a in args]
        code, output = _cli(workspace, ["run", *args, "--config", "deploy.json"], {})
        check(code, output, repr(args)[:200])
        event = workspace / "event.json"
        event.write_text(payload, encoding="utf-8", errors="surrogatepass")
        code, output = _cli(
            workspace, ["--config", "deploy.json", "--mode", "preview"], {"GITHUB_EVENT_PATH": str(event)}
        )
        check(code, output, f"event {payload[:200]!r}")

    _drive(st.tuples(arguments(), event_payloads()), max(1, count // 2), one)
    return tally


_ATHERIS_WORKER = textwrap.dedent(
    """
    import sys, traceback
    from pathlib import Path
    import atheris
    with atheris.instrument_imports(include=["orchestrator"]):
        from orchestrator.config import parse_config, read_config_file
        from orchestrator.errors import ConfigError
    folder = Path(sys.argv[1])
    broke = open(folder / "broke.txt", "a", encoding="utf-8")
    def one(data: bytes) -> None:
        fdp = atheris.FuzzedDataProvider(data)
        suffix = ".json" if fdp.ConsumeBool() else ".yml"
        path = folder / f"a{suffix}"
        path.write_bytes(fdp.ConsumeBytes(fdp.remaining_bytes()))
        try:
            parse_config(read_config_file(path), folder)
        except ConfigError:
            pass
        except Exception:
            broke.write(repr(path.read_bytes()[:200]) + "\\n" + traceback.format_exc() + "\\n----\\n")
            broke.flush()
    atheris.Setup([sys.argv[0], f"-runs={sys.argv[2]}", "-timeout=5", "-rss_limit_mb=2048",
                   "-max_len=4096", f"-seed={sys.argv[3]}"], one)
    atheris.Fuzz()
    """
)


def fuzz_atheris(count: int) -> Tally:
    tally = Tally("loader: atheris bytes")
    try:
        import atheris  # noqa: F401
    except ImportError:
        tally.peer = "atheris not installed (pip install -e '.[fuzz]'): skipped"
        return tally
    with tempfile.TemporaryDirectory() as folder:
        worker = Path(folder) / "worker.py"
        worker.write_text(_ATHERIS_WORKER)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, str(worker), folder, str(count), "1"],
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
        tally.seconds = time.monotonic() - started
        broke = Path(folder, "broke.txt").read_text() if Path(folder, "broke.txt").exists() else ""
    runs = [line for line in done.stderr.splitlines() if line.startswith("Done ")]
    tally.tried = int(runs[-1].split()[1]) if runs else 0
    for record in filter(None, broke.split("\n----\n")):
        tally.note("tracebacks", record)
    if "ERROR: libFuzzer: timeout" in done.stderr:
        tally.note("hangs", done.stderr[-600:])
    elif done.returncode != 0 or not runs:
        tally.note("tracebacks", f"atheris exited {done.returncode}: {done.stderr[-600:]}")
    tally.peer = f"coverage-guided, {tally.tried} runs"
    return tally


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every budget (default 1.0)")
    scale = parser.parse_args().scale
    Secret(CANARY, "fuzz canary")
    Secret(CANARY_DSN, "fuzz canary DSN")
    signal.signal(signal.SIGALRM, _alarm)
    workspace = Path(tempfile.mkdtemp(prefix="do-fuzz-"))
    write_config(workspace, base_config())
    plan: list[tuple[str, Callable[[], Tally]]] = [
        ("documents", lambda: fuzz_documents(int(1500 * scale), workspace)),
        ("texts", lambda: fuzz_texts(int(1500 * scale), workspace)),
        ("arguments", lambda: fuzz_arguments(int(1000 * scale), workspace)),
        ("files", lambda: fuzz_files(int(300 * scale))),
        ("events", lambda: fuzz_events(int(1000 * scale), workspace)),
        ("atheris", lambda: fuzz_atheris(int(20000 * scale))),
        ("processes", lambda: fuzz_cli_processes(int(30 * scale), workspace)),
    ]
    tallies = []
    for _, run in plan:
        started = time.monotonic()
        tally = run()
        tally.seconds = tally.seconds or time.monotonic() - started
        tallies.append(tally)
        print(f"  {tally.name}: {tally.tried} inputs in {tally.seconds:.1f} s", file=sys.stderr, flush=True)

    print("| target | inputs | refused (exit 2) | accepted | tracebacks | hangs | secrets | s | note |")
    print("|---|---|---|---|---|---|---|---|---|")
    for t in tallies:
        print(
            f"| {t.name} | {t.tried} | {t.refused} | {t.accepted} | {t.tracebacks} | {t.hangs} | {t.secrets} | "
            f"{t.seconds:.1f} | {t.peer} |"
        )
    broke = [line for t in tallies for line in t.broke]
    print("\nwhat broke:" if broke else "\nwhat broke: nothing")
    for line in broke:
        print("  - " + line.replace("\n", "\n    "))
    total = sum(t.tried for t in tallies)
    tracebacks = sum(t.tracebacks for t in tallies)
    hangs = sum(t.hangs for t in tallies)
    secrets = sum(t.secrets for t in tallies)
    print("(the machine was shared with other work while this ran; times are indicative)")
    print(f"fuzz: inputs={total} tracebacks={tracebacks} hangs={hangs} secrets={secrets}")
    return 0 if tracebacks == hangs == secrets == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
