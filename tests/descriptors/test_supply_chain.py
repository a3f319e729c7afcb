"""What streamfn ships of other people's code, pinned: the vendored JavaScript and CSS by
sha256 (each vendor folder's SHA256SUMS, copied from the npm tarball's files), and every base
image by digest, but for those docs/security.md lists as pinned at release (no dated record of
their digests exists to check one against). `make lint` runs this file too."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENDORED = [ROOT / "streamfn/console/static/vendor", ROOT / "streamfn/ingest/static/vendor"]
DOCKERFILES = [ROOT / "Dockerfile", *sorted((ROOT / "functions").glob("*/Dockerfile"))]
DESCRIPTORS = [ROOT / "docker-compose.yml", *sorted((ROOT / "deploy/k8s").glob("*.yaml"))]
PINNED = re.compile(r"[^@\s]+:[^@\s]+@sha256:[0-9a-f]{64}")
OURS = re.compile(r"streamfn(-infer)?:[\w.-]+")  # built from this repository
AT_RELEASE = "digest: at-release"
# The images whose digest is pinned at release (docs/security.md, "Base images" says why).
PINNED_AT_RELEASE = {
    "public.ecr.aws/lambda/python:3.12",
    "minio/minio:RELEASE.2025-04-22T22-12-26Z",
    "prom/prometheus:v3.5.0",
    "grafana/grafana:12.1.0",
}


def sums(folder: Path) -> dict[str, str]:
    """File name -> sha256, as `sha256sum` writes them."""
    found = {}
    for line in (folder / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        found[name.lstrip("*")] = digest
    return found


@pytest.mark.parametrize("folder", VENDORED, ids=lambda f: f.parent.parent.name)
def test_vendored_files_are_the_pinned_ones(folder: Path) -> None:
    pinned = sums(folder)
    shipped = {p.name for p in folder.iterdir()} - {"SHA256SUMS", "README.md"}
    assert shipped == set(pinned), "every vendored file is pinned, and every pin is shipped"
    for name, digest in pinned.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name


def images() -> list[tuple[str, str, bool]]:
    """(file, image, marked to be pinned at release) of every FROM and `image:`."""
    found = []
    for path in DOCKERFILES:
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if line.startswith("FROM "):
                image = line.split()[1]
                found.append((path.name, image, AT_RELEASE in "\n".join(lines[max(i - 2, 0) : i])))
    for path in DESCRIPTORS:
        for line in path.read_text().splitlines():
            match = re.match(r"\s*image:\s*(\S+)", line)
            if match:
                found.append((path.name, match[1], AT_RELEASE in line))
    return found


def test_every_base_image_is_pinned_by_digest_or_listed() -> None:
    found = images()
    assert {image for _, image, _ in found} >= {"streamfn:local", "streamfn:0.1.0"}
    at_release = set()
    for where, image, marked in found:
        if OURS.fullmatch(image):
            continue
        if marked:
            at_release.add(image)
            assert not PINNED.fullmatch(image), f"{where}: {image} is pinned; drop the marker"
        else:
            assert PINNED.fullmatch(image), f"{where}: {image} is not pinned by digest"
    assert at_release == PINNED_AT_RELEASE
    documented = (ROOT / "docs/security.md").read_text()
    for image in PINNED_AT_RELEASE:
        assert f"`{image}`" in documented, f"docs/security.md does not list {image}"
