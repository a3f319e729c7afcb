"""The docs as a site: mkdocs.yml builds strict, with the README as its home page and every link
written for GitHub pointing at the site's own page, and a broken link or anchor fails the build."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from mkdocs.structure.files import File, Files

from streamfn.docs import site

ROOT = Path(__file__).resolve().parents[2]
# What a build reads: mkdocs.yml, its hook, docs/ and the pages kept outside docs/.
INPUTS = ("mkdocs.yml", "streamfn/docs/site.py", "docs", *site.OUTSIDE)


def build(root: Path, out: Path) -> subprocess.CompletedProcess[str]:
    """`mkdocs build --strict` of the repository at `root`, into `out`."""
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=root, capture_output=True, text=True, timeout=120,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip


def copy_inputs(to: Path) -> Path:
    """The files a build reads, copied under `to`."""
    for name in INPUTS:
        source, target = ROOT / name, to / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy(source, target)
    return to


def test_the_site_builds_with_the_readme_home_and_every_page(tmp_path: Path) -> None:
    done = build(ROOT, tmp_path / "site")
    assert done.returncode == 0, done.stderr
    home = (tmp_path / "site" / "index.html").read_text()
    assert "Serve any MLflow model on a stream" in home
    # The README's links to docs/ and to BENCHMARKS.md lead to the site's pages.
    assert 'href="SCALING/"' in home
    assert 'href="BENCHMARKS/"' in home
    models = (tmp_path / "site" / "models" / "index.html").read_text()
    assert 'href="../BENCHMARKS/#compiled-inference"' in models
    for page in ("BENCHMARKS", "ceilings", "CHANGELOG", "CONTRIBUTING", "LICENSE"):
        assert (tmp_path / "site" / page / "index.html").exists(), page


def test_a_broken_link_or_anchor_fails_the_build(tmp_path: Path) -> None:
    root = copy_inputs(tmp_path / "repo")
    with (root / "docs" / "api.md").open("a") as page:
        page.write("\nSee [the limits](SCALING.md#no-such-heading) and [the FAQ](faq.md).\n")
    done = build(root, tmp_path / "site")
    assert done.returncode == 1
    assert "no-such-heading" in done.stderr
    assert "faq.md" in done.stderr


def test_a_page_left_out_of_the_nav_fails_the_build(tmp_path: Path) -> None:
    root = copy_inputs(tmp_path / "repo")
    (root / "docs" / "new-page.md").write_text("# A page nobody listed\n")
    done = build(root, tmp_path / "site")
    assert done.returncode == 1
    assert "new-page.md" in done.stderr


def test_links_follow_the_repository_to_the_sites_pages(tmp_path: Path) -> None:
    files = Files([File(name, str(tmp_path), str(tmp_path / "site"), use_directory_urls=True)
                   for name in ("api.md", "SCALING.md", "console.png")])  # fmt: skip
    readme = "[api](docs/api.md#the-hot-path) ![x](docs/console.png) [c](CHANGELOG.md) [d](docs/)"
    assert site.rewrite(readme, "index.md", files) == (
        "[api](api.md#the-hot-path) ![x](console.png) [c](CHANGELOG.md) [d](index.md)"
    )
    page = (
        "[b](../BENCHMARKS.md#compiled-inference) [s](SCALING.md) [w](https://x.org/a.md) [h](#top)"
    )
    assert site.rewrite(page, "api.md", files) == (
        "[b](BENCHMARKS.md#compiled-inference) [s](SCALING.md) [w](https://x.org/a.md) [h](#top)"
    )
    # A link to a file the site does not hold is left for the strict build to report.
    assert site.rewrite("[t](../template.yaml)", "api.md", files) == "[t](../template.yaml)"
    ceilings = "[Scaling](../docs/SCALING.md)"
    assert site.rewrite(ceilings, "ceilings.md", files) == "[Scaling](SCALING.md)"
