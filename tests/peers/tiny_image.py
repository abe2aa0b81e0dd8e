"""A container image of a few megabytes for image releases: Debian's static busybox serving two files.

Made with the deploying side's podman from a root filesystem built here (no registry is reachable):
`/www/health` (a 200 for the health checks) and `/www/version` (`{"version": ...}`, as the demo
app answers), served by `busybox httpd` on the port given as its argument. The shell in front of
it ends on SIGTERM (PID 1 in a container ignores signals it sets no handler for), so a supervisor
stopping `podman run` stops the container too. `remove` deletes the image again.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TinyImage", "build_tiny_image", "image_command", "missing"]

BUSYBOX = Path("/bin/busybox")
_SERVE = 'trap \'kill "$pid"; exit 0\' TERM INT\n/bin/busybox httpd -f -p "$1" -h /www &\npid=$!\nwait "$pid"\n'


def missing() -> str | None:
    """What to install for these images, or None."""
    absent = [pkg for tool, pkg in (("podman", "podman"), ("runc", "runc")) if shutil.which(tool) is None]
    if not BUSYBOX.exists() or "static" not in _file_kind(BUSYBOX):
        absent.append("busybox-static")
    return f"image releases need: apt-get install -y {' '.join(absent)}" if absent else None


def _file_kind(path: Path) -> str:
    done = subprocess.run(["ldd", str(path)], capture_output=True, text=True, check=False)
    return "static" if done.returncode != 0 or "not a dynamic" in done.stdout + done.stderr else "dynamic"


@dataclass(frozen=True)
class TinyImage:
    reference: str
    image_id: str

    def remove(self) -> None:
        subprocess.run(["podman", "rmi", "--force", self.reference], capture_output=True, check=False)


def build_tiny_image(reference: str, version: str) -> TinyImage:
    """`reference` (e.g. localhost/tiny:abc-v1) answering `version`. Raises RuntimeError with podman's words."""
    problem = missing()
    if problem:
        raise RuntimeError(problem)
    with tempfile.TemporaryDirectory(prefix="tiny-image-") as scratch:
        root = Path(scratch) / "root"
        (root / "bin").mkdir(parents=True)
        (root / "www").mkdir()
        shutil.copy(BUSYBOX, root / "bin" / "busybox")
        (root / "www" / "health").write_text("ok\n")
        (root / "www" / "version").write_text(json.dumps({"version": version}) + "\n")
        (root / "serve").write_text(_SERVE)
        tar = subprocess.run(["tar", "-C", str(root), "-c", "."], capture_output=True, check=True).stdout
        done = subprocess.run(
            ["podman", "import", "--quiet", "-", reference], input=tar, capture_output=True, check=False
        )
    if done.returncode != 0:
        raise RuntimeError(f"podman import failed: {done.stderr.decode(errors='replace')[-1000:]}")
    inspected = subprocess.run(
        ["podman", "image", "inspect", "--format", "{{.Id}}", reference], capture_output=True, text=True, check=True
    )
    return TinyImage(reference, "sha256:" + inspected.stdout.strip().removeprefix("sha256:"))


def image_command() -> list[str]:
    """`local.command` running an image release on its host (by the ID the agent verified)."""
    return [
        "{engine}",
        "run",
        "--rm",
        "--replace",
        "--name",
        "tiny-{version}-{port}",
        "--network=host",
        "{image}",
        "/bin/busybox",
        "sh",
        "/serve",
        "{port}",
    ]
