"""Installing the orchestrator on a host: find its Python, send what is missing, check it by digest.

One Python run on the host (`_PROBE`) says which Python it is, where the install root is, which of
the native modules (`bundle.NATIVE`) that Python lacks, and the digests of what is already installed
for this version (creating the version's directory). What is missing or different is sent by SFTP, and a second run
(`_COMMIT`) checks the digests of what arrived and unpacks the native library; a file that does
not match is removed and refused. Each run costs a Python start on the host, hence two at most.
"""

from __future__ import annotations

import json
import logging
import shlex
from typing import TYPE_CHECKING

from orchestrator.errors import DeployError
from orchestrator.platforms.hosts.bundle import Bundle

if TYPE_CHECKING:
    from orchestrator.platforms.hosts.connection import HostConnection

__all__ = ["MIN_PYTHON", "install"]

log = logging.getLogger(__name__)

MIN_PYTHON = (3, 11)

# Written for any Python 3, so an old one still says which version it is.
_PROBE = """
import hashlib, importlib.util, json, os, sys, sysconfig
root = os.path.expanduser(sys.argv[1])
home = os.path.join(root, sys.argv[2])
missing = [name for name in sys.argv[3].split(",") if name and importlib.util.find_spec(name) is None]
def digest(name):
    try:
        with open(os.path.join(home, name), "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return ""
ok = sys.version_info[:2] >= (3, 11)
if ok:
    os.makedirs(home, mode=0o700, exist_ok=True)
print(json.dumps({"version": list(sys.version_info[:2]), "root": root, "home": home,
    "suffix": sysconfig.get_config_var("EXT_SUFFIX"), "missing": missing,
    "zipapp": digest("orchestrator.pyz") if ok else "", "native": digest("native.tar") if ok else ""}))
"""

_COMMIT = """
import hashlib, json, os, shutil, sys, tarfile
home, wanted = sys.argv[1], json.loads(sys.argv[2])
for name, expected in sorted(wanted.items()):
    path = os.path.join(home, name)
    with open(path, "rb") as f:
        actual = hashlib.sha256(f.read()).hexdigest()
    if actual != expected:
        os.unlink(path)
        sys.exit("%s arrived with sha256 %s, not %s; removed" % (name, actual, expected))
if "native.tar" in wanted:
    lib = os.path.join(home, "lib")
    shutil.rmtree(lib, ignore_errors=True)
    with tarfile.open(os.path.join(home, "native.tar")) as archive:
        for member in archive.getmembers():
            if member.name.startswith("/") or ".." in member.name.split("/") or not (member.isfile() or member.isdir()):
                sys.exit("native.tar holds %r; refused" % member.name)
        archive.extractall(lib)
"""


def install(connection: HostConnection, bundle: Bundle, python: str) -> tuple[str, str, str | None]:
    """Install `bundle` unless it is there. Returns (root, zipapp path, native lib dir or None).

    Raises DeployError saying what to install for a missing or old Python, or one that cannot load
    the native library; HostLostError if the host stops answering.
    """
    name = connection.name
    quoted = shlex.quote(python)
    status, out, err = connection.run(
        f"{quoted} -c {shlex.quote(_PROBE)} {shlex.quote(connection.host.root)} {shlex.quote(bundle.version)} "
        f"{shlex.quote(','.join(bundle.modules))}"
    )
    fix = (
        f"install Python {MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer on {name} (Debian/Ubuntu: apt-get install python3), "
        "or set hosts.python to its path"
    )
    if status != 0:
        found = "was not found" if status == 127 else f"failed (exit {status}: {err.strip()[-300:]})"
        raise DeployError(
            f"host {name}: the host's Python `{python}` {found}; {fix}", platform="hosts", operation="python"
        )
    probe = json.loads(out.strip().splitlines()[-1])
    version = tuple(probe["version"])
    if version < MIN_PYTHON:
        raise DeployError(
            f"host {name}: `{python}` is Python {'.'.join(map(str, version))}; the orchestrator needs "
            f"{MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer; {fix}",
            platform="hosts",
            operation="python",
        )
    home = str(probe["home"])
    wanted: dict[str, str] = {}
    if probe["zipapp"] != bundle.sha256:
        wanted["orchestrator.pyz"] = bundle.sha256
    lib = None
    if probe["missing"]:
        missing = ", ".join(probe["missing"])
        if probe["suffix"] != bundle.extension_suffix:
            raise DeployError(
                f"host {name}: its Python `{python}` lacks {missing}, and the copies this orchestrator runs with are "
                f"built for {bundle.extension_suffix.strip('.')} (that Python loads "
                f"{str(probe['suffix']).strip('.')}); install them there (`{python} -m pip install httptools==0.9.0 "
                "pyahocorasick`), or set hosts.python to a Python of the same version as the orchestrator's",
                platform="hosts",
                operation="install",
            )
        lib = f"{home}/lib"
        if probe["native"] != bundle.native_sha256:
            wanted["native.tar"] = bundle.native_sha256
    if wanted:
        log.info("host %s: installing the orchestrator %s in %s", name, bundle.version, home)
        payloads = {"orchestrator.pyz": bundle.data, "native.tar": bundle.native}
        for file in wanted:
            connection.sftp_write(f"{home}/{file}", payloads[file], "install")
        status, _, err = connection.run(
            f"{quoted} -c {shlex.quote(_COMMIT)} {shlex.quote(home)} {shlex.quote(json.dumps(wanted))}"
        )
        if status != 0:
            raise DeployError(
                f"host {name}: installing the orchestrator in {home} failed: {err.strip()[-500:]}",
                platform="hosts",
                operation="install",
            )
    return str(probe["root"]), f"{home}/orchestrator.pyz", lib
