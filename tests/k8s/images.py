"""The images `make images` published to the loopback registry (build/images.json), for tests and nodes."""

from __future__ import annotations

import json
from pathlib import Path

from .components import REPO, ToolsMissing

__all__ = ["IMAGES_JSON", "published"]

IMAGES_JSON = REPO / "build/images.json"


def published(path: Path = IMAGES_JSON) -> dict:
    """{"registry": host:port, "base": ref, "<image>": {"ref": ..., "archs": "amd64,arm64"}, ...}"""
    try:
        images: dict = json.loads(path.read_text())
    except FileNotFoundError:
        raise ToolsMissing(f"{path} is missing: run `make images` (builds and publishes the images)") from None
    for needed in ("pause", "coredns"):
        if needed not in images:
            raise ToolsMissing(f"{path} lists no {needed} image: run `make k8s-tools images`")
    return images
