"""Image releases on SSH hosts: the image reaches each host's own podman, is held to its ID, and runs by it.

Each namespace host has its own image store (tests/peers/ssh_hosts.py), so an image is on a host
only once it was loaded or pulled there. Images travel both ways: `hosts.image_transfer: upload`
(saved from this machine's podman), and `pull` from a real registry the tests run
(tests/peers/registry.py) by digest; an image given by tag is refused before anything runs.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.contract import DeployConfig
from orchestrator.errors import DeployError
from orchestrator.platforms.base import Release
from orchestrator.platforms.hosts.host_image import ImageRefused, prepare_image
from orchestrator.strategies import RolloutFailure
from tests.peers.registry import missing as registry_missing
from tests.peers.registry import start_registry
from tests.peers.tiny_image import TinyImage, build_tiny_image, image_command, missing
from tests.platforms.hosts.conftest import Site

# Real SSH hosts and real containers: each case starts podman containers on three hosts.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture
def images() -> Iterator[dict[str, TinyImage]]:
    problem = missing()
    if problem:
        pytest.fail(problem, pytrace=False)
    tag = secrets.token_hex(3)
    made = {v: build_tiny_image(f"localhost/deploy-orchestrator-tiny:{tag}-{v}", v) for v in ("v1", "v2")}
    yield made
    for image in made.values():
        image.remove()


def _image_config(site: Site, **hosts: object) -> DeployConfig:
    local = dict(site.document["deployment_config"]["local"], command=image_command())
    return site.config(local=local, hosts={"image_transfer": "upload", **hosts})


def _podman(site: Site, index: int, *args: str) -> subprocess.CompletedProcess[str]:
    """podman as host `index` sees it (its own image store)."""
    env = {**os.environ, **site.fleet.hosts[index].session_env}
    return subprocess.run(["podman", *args], capture_output=True, text=True, env=env, timeout=60, check=False)


def test_an_image_release_is_uploaded_checked_and_run_by_its_id_on_every_host(
    site: Site, images: dict[str, TinyImage]
) -> None:
    config = _image_config(site)
    platform = site.platform(config)
    for i in range(3):
        assert _podman(site, i, "image", "exists", images["v1"].image_id).returncode == 1, "not on the host yet"

    site.deploy(platform, "v1", config=config, image=images["v1"].reference)
    site.deploy(platform, "v2", config=config, image=images["v2"].reference)

    assert [site.on_host(i) for i in range(3)] == ["v2", "v2", "v2"]
    assert site.through_front() == {"v2"}
    for i, host in enumerate(site.fleet.hosts):
        assert _podman(site, i, "image", "exists", images["v2"].image_id).returncode == 0
        commands = [Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") for pid in host.pids()]
        running = [c for c in commands if c[:2] and c[0].endswith(b"podman") and c[1] == b"run"]
        assert {images["v1"].image_id.encode(), images["v2"].image_id.encode()} <= {a for c in running for a in c}
    platform.rollback(Release("v1", image=images["v1"].reference))
    assert [site.on_host(i) for i in range(3)] == ["v1", "v1", "v1"]


def test_an_image_release_pulled_by_its_digest_from_a_registry_runs_on_every_host(
    site: Site, images: dict[str, TinyImage]
) -> None:
    problem = registry_missing()
    if problem:
        pytest.fail(problem, pytrace=False)
    registry = start_registry(site.fleet)
    try:
        reference = registry.push(images["v1"].reference, "shop/tiny")
        config = _image_config(site, image_transfer="pull")
        site.deploy(site.platform(config), "v1", config=config, image=reference)
        assert [site.on_host(i) for i in range(3)] == ["v1", "v1", "v1"]
        for i in range(3):
            listed = _podman(site, i, "image", "inspect", "--format", "{{json .RepoDigests}}", reference)
            assert reference.split("@")[1] in listed.stdout
    finally:
        registry.close()


def test_a_host_without_podman_or_docker_is_told_what_to_install_and_nothing_serves_it(
    site: Site, images: dict[str, TinyImage]
) -> None:
    site.fleet.hosts[1].set_session_env(PATH="/nonexistent")
    config = _image_config(site)
    with pytest.raises(RolloutFailure) as failure:
        site.deploy(site.platform(config), "v1", config=config, image=images["v1"].reference)
    host = site.fleet.hosts[1].address
    assert (
        f"host {host}: release v1: neither podman nor docker is installed here, and the release is an image: "
        "install one (Debian/Ubuntu: apt-get install podman), or set hosts.container_engine to its path"
    ) in str(failure.value)
    assert failure.value.outcome.traffic_moved is False


def test_an_image_the_hosts_would_pull_by_tag_is_refused_before_any_host_is_touched(site: Site) -> None:
    config = _image_config(site, image_transfer="pull")
    with pytest.raises(DeployError, match=r"image localhost/shop:v1 is given by tag, and the hosts pull an image"):
        site.platform(config).start("v1", "localhost/shop:v1")
    roots = [Path(h["root"]) for h in site.document["deployment_config"]["hosts"]["hosts"]]
    assert [root.exists() for root in roots] == [False, False, False]


def test_an_archive_that_is_not_what_was_sent_or_does_not_hold_the_image_is_refused(
    images: dict[str, TinyImage], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "v1.tar"
    save = ["podman", "save", "--quiet", "--output", str(archive), images["v1"].reference]
    subprocess.run(save, check=True)
    (tmp_path / "storage.conf").write_text(
        f'[storage]\ndriver = "vfs"\ngraphroot = "{tmp_path / "graph"}"\nrunroot = "{tmp_path / "run"}"\n'
    )
    # A host's own image store, as the agent's engine sees it there.
    monkeypatch.setenv("CONTAINERS_STORAGE_CONF", str(tmp_path / "storage.conf"))
    spec = {
        "transfer": "upload",
        "reference": images["v1"].reference,
        "archive": str(archive),
        "id": images["v1"].image_id,
    }

    with pytest.raises(ImageRefused, match=f"the image archive has sha256 [0-9a-f]{{64}}, not {'0' * 64} as sent"):
        prepare_image({**spec, "sha256": "0" * 64}, None)
    assert not archive.exists()

    here = {k: v for k, v in os.environ.items() if k != "CONTAINERS_STORAGE_CONF"}  # the deploying side's store
    subprocess.run(
        ["podman", "save", "--quiet", "--output", str(archive), images["v1"].reference], check=True, env=here
    )
    digest = subprocess.run(["sha256sum", str(archive)], capture_output=True, text=True, check=True).stdout.split()[0]
    with pytest.raises(ImageRefused, match=f"does not hold image {images['v2'].image_id} as saved"):
        prepare_image({**spec, "sha256": digest, "id": images["v2"].image_id}, None)
    subprocess.run(["podman", "rmi", "--all", "--force"], capture_output=True, check=False)
