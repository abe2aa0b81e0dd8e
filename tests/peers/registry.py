"""A real image registry the SSH hosts pull from: Debian's docker-registry (the CNCF distribution server).

One storage directory, served on the root namespace's end of every host's link (one process per
address: the registry binds one), so each host reaches it as a server on its own network would be.
Each host's podman maps the name `registry.test` to its address (its own registries.conf, plain
HTTP), so one image reference names the image on every host. `push` stores an image from this
machine's podman and returns the reference pinned by the digest the registry answered.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tests.peers.postgres import free_port
from tests.peers.ssh_hosts import Fleet, _end, _wait_for_port

__all__ = ["NAME", "Registry", "missing", "start_registry"]

NAME = "registry.test"
_SERVER = "/usr/bin/docker-registry"


def missing() -> str | None:
    return None if Path(_SERVER).exists() else "the image registry peer needs: apt-get install -y docker-registry"


@dataclass
class Registry:
    port: int
    directory: Path
    addresses: list[str]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def push(self, local: str, repository: str) -> str:
        """`local` (in this machine's podman) pushed as `repository`; `registry.test/<repository>@sha256:...`."""
        digest_file = self.directory / f"{repository.replace('/', '_')}.digest"
        target = f"docker://{self.addresses[0]}:{self.port}/{repository}:latest"
        done = subprocess.run(
            ["podman", "push", "--quiet", "--tls-verify=false", "--digestfile", str(digest_file), local, target],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"podman push failed: {done.stderr[-1000:]}")
        return f"{NAME}/{repository}@{digest_file.read_text().strip()}"

    def close(self) -> None:
        for process in self.processes:
            _end(process)
        shutil.rmtree(self.directory, ignore_errors=True)


def start_registry(fleet: Fleet) -> Registry:
    """The registry on every host's gateway; each host's podman told where `registry.test` is."""
    problem = missing()
    if problem:
        raise RuntimeError(problem)
    registry = Registry(free_port(), Path(tempfile.mkdtemp(prefix="registry-")), [h.gateway for h in fleet.hosts])
    try:
        for address in registry.addresses:
            config = registry.directory / f"config-{address}.yml"
            config.write_text(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
                f"    rootdirectory: {registry.directory / 'storage'}\n"
                f"http:\n  addr: {address}:{registry.port}\n"
            )
            log = registry.directory / f"registry-{address}.log"
            registry.processes.append(
                subprocess.Popen(
                    [_SERVER, "serve", str(config)],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=open(log, "ab"),  # noqa: SIM115 - the child owns it
                )
            )
            _wait_for_port(address, registry.port, registry.processes[-1], log)
        for host in fleet.hosts:
            conf = host.directory / "registries.conf"
            conf.write_text(
                f'[[registry]]\nprefix = "{NAME}"\nlocation = "{host.gateway}:{registry.port}"\ninsecure = true\n'
            )
            host.set_session_env(CONTAINERS_REGISTRIES_CONF=str(conf))
    except BaseException:
        registry.close()
        raise
    return registry
