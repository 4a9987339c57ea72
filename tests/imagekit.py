"""Test helpers for the images `make images` published: the project's Docker engine and its containers.

Every image is pulled from the loopback registry by its per-architecture tag, then run with `--pull never`
and `--network none` (the container's own loopback only). Containers are named `tbtest-*` and removed
by the test that made them.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import tarfile
import urllib.request
from collections.abc import Iterator
from http.client import HTTPResponse
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("TRAINBOX_CACHE", Path.home() / ".cache/trainbox"))
DOCKER = "/usr/bin/docker"
ENV = {
    **os.environ,
    "DOCKER_HOST": f"unix://{CACHE / 'docker/docker.sock'}",
    "DOCKER_CONFIG": str(CACHE / "docker/config"),
}


class ImagesMissing(Exception):
    """`make images` has not run (or its engine cannot start)."""


def published() -> dict:
    path = REPO / "build/images.json"
    if not path.exists():
        raise ImagesMissing(f"{path} is missing: run `make images`")
    return json.loads(path.read_text())


def engine_up() -> None:
    result = subprocess.run(["bash", str(REPO / "scripts/images/engine.sh"), "up"], capture_output=True, text=True)
    if result.returncode != 0:
        raise ImagesMissing(f"the image engine did not start: {result.stderr.strip()}")


def docker(*args: str, timeout: float = 600, check: bool = True, stdin: str | None = None) -> str:
    result = subprocess.run(
        [DOCKER, *args], env=ENV, capture_output=True, text=True, timeout=timeout, input=stdin, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.stdout


def pull(image: str, arch: str) -> str:
    """Pull the image's `<tag>-<arch>` from the loopback registry; return that reference."""
    ref = f"{published()[image]['ref']}-{arch}"
    docker("pull", "-q", ref)
    return ref


class Container:
    """One detached container (removed on exit)."""

    def __init__(self, ref: str, *args: str, platform: str, options: tuple[str, ...] = ()) -> None:
        self.name = f"tbtest-{secrets.token_hex(4)}"
        docker("run", "-d", "--pull", "never", "--network", "none", "--platform", platform, "--name", self.name,
               *options, ref, *args)  # fmt: skip

    def exec(self, *args: str, stdin: str | None = None, timeout: float = 300, check: bool = True) -> str:
        return docker("exec", *(["-i"] if stdin is not None else []), self.name, *args, stdin=stdin,
                      timeout=timeout, check=check)  # fmt: skip

    def running(self) -> bool:
        return docker("inspect", "-f", "{{.State.Running}}", self.name, check=False).strip() == "true"

    def ready(self, probe: str) -> bool:
        """Whether `python -c probe` succeeds in the container."""
        return docker("exec", self.name, "python", "-c", f"{probe}; print('ok')", check=False).strip() == "ok"

    def logs(self) -> str:
        return docker("logs", "--tail", "80", self.name, check=False)

    def remove(self) -> None:
        docker("rm", "-f", self.name, check=False)

    def __enter__(self) -> Container:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


MANIFESTS = ", ".join((
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
))  # fmt: skip


def registry_get(path: str, accept: str = "*/*") -> HTTPResponse:
    """GET from the loopback registry's API (``/v2/...``)."""
    request = urllib.request.Request(f"http://{published()['registry']}{path}", headers={"Accept": accept})
    return urllib.request.urlopen(request, timeout=60)


def layer_members(ref: str) -> Iterator[tuple[str, tarfile.TarFile, tarfile.TarInfo]]:
    """(layer digest, layer tar, member) for every file in every layer of the image, as the registry serves it to
    nodes: each layer blob streamed and unpacked as it comes (a member's data is readable until the next)."""
    name, tag = ref.split("/", 1)[1].rsplit(":", 1)
    with registry_get(f"/v2/{name}/manifests/{tag}", MANIFESTS) as answer:
        manifest = json.load(answer)
    for layer in manifest["layers"]:
        with registry_get(f"/v2/{name}/blobs/{layer['digest']}") as blob, tarfile.open(fileobj=blob, mode="r|*") as tar:
            for member in tar:
                yield layer["digest"], tar, member
