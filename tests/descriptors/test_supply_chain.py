"""What streamfn ships of other people's code, pinned: the vendored JavaScript and CSS by
sha256 (each vendor folder's SHA256SUMS, copied from the npm tarball's files). `make lint` runs
this file too."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENDORED = [ROOT / "streamfn/console/static/vendor", ROOT / "streamfn/ingest/static/vendor"]


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
