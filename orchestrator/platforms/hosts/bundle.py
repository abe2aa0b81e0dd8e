"""The orchestrator for a host: a zipapp of this very package, and the native modules it needs.

A host runs exactly the code of the orchestrator that deploys to it: the zipapp is built from the
imported `orchestrator` package (Python sources only, sorted, fixed timestamps, so the same code
always gives the same bytes) and installed at `<root>/<version>/orchestrator.pyz`, where `version`
carries the package version and the digest. The host's own Python runs it. Beyond the standard
library the host side needs a few C extensions (`NATIVE`: the proxy's HTTP parser, the redaction
filter's matcher), which cannot load from a zip: a host whose Python has them all uses its own;
otherwise the copies this orchestrator runs with are sent as a tarball (`native`) and unpacked to
`<root>/<version>/lib`, if the host's Python can load them (the same extension suffix, e.g.
`.cpython-311-x86_64-linux-gnu.so`).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import io
import sysconfig
import tarfile
import zipfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import orchestrator

__all__ = ["AGENT_MODULE", "NATIVE", "Bundle", "bundle"]

NATIVE = ("httptools", "ahocorasick")
"""Modules with C extensions the host side imports (those this orchestrator can import are sent)."""

AGENT_MODULE = "orchestrator.platforms.hosts.agent"
_EPOCH = (2020, 1, 1, 0, 0, 0)
_MAIN = f"import runpy\nrunpy.run_module({AGENT_MODULE!r}, run_name='__main__')\n"


@dataclass(frozen=True, slots=True)
class Bundle:
    data: bytes
    sha256: str
    native: bytes
    """A tarball of the `NATIVE` modules as this orchestrator runs them."""
    modules: tuple[str, ...]
    """The modules in `native`."""
    native_sha256: str
    extension_suffix: str
    """The suffix of the native modules in `native`: a host's Python loads them only if it has the same."""

    @property
    def version(self) -> str:
        """`<package version>-<first 12 hex of the digest>`: a new build never overwrites an old one."""
        try:
            release = importlib.metadata.version("deploy-orchestrator")
        except importlib.metadata.PackageNotFoundError:
            release = "0"
        return f"{release}-{hashlib.sha256((self.sha256 + self.native_sha256).encode()).hexdigest()[:12]}"


@cache
def bundle() -> Bundle:
    """The zipapp of the running orchestrator (built once per process)."""
    package = Path(orchestrator.__file__).resolve().parent
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(package.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            name = path.relative_to(package.parent).as_posix()
            archive.writestr(zipfile.ZipInfo(name, _EPOCH), path.read_bytes())
        archive.writestr(zipfile.ZipInfo("__main__.py", _EPOCH), _MAIN)
    data = buffer.getvalue()
    modules = tuple(name for name in NATIVE if importlib.util.find_spec(name) is not None)
    native = _native(modules)
    suffix = str(sysconfig.get_config_var("EXT_SUFFIX"))
    return Bundle(data, hashlib.sha256(data).hexdigest(), native, modules, hashlib.sha256(native).hexdigest(), suffix)


def _files(name: str) -> list[tuple[Path, Path]]:
    """(file, the directory its archive name is relative to) for a module or package."""
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.origin is not None, f"{name} was found a moment ago"
    origin = Path(spec.origin).resolve()
    if origin.name != "__init__.py":
        return [(origin, origin.parent)]
    package = origin.parent
    return [(p, package.parent) for p in sorted(package.rglob("*")) if p.is_file() and "__pycache__" not in p.parts]


def _native(modules: tuple[str, ...]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for path, base in (pair for name in modules for pair in _files(name)):
            info = archive.gettarinfo(str(path), arcname=path.relative_to(base).as_posix())
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            with path.open("rb") as f:
                archive.addfile(info, f)
    return buffer.getvalue()
