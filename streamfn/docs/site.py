"""The site's MkDocs hooks (mkdocs.yml): the README is the home page, and the pages kept outside
docs/ (BENCHMARKS.md, the ceilings file, CHANGELOG.md, CONTRIBUTING.md, LICENSE) are pages too.

Every page is written for GitHub, where links follow the repository's layout (`docs/api.md` from
the README, `../BENCHMARKS.md` from a page in docs/). The site has them all at one level, so each
link that names a file the site holds is rewritten to where the site has it; any other link is
left as written, and `mkdocs build --strict` fails on it if it leads nowhere.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

DOCS = "docs"
# Pages outside docs/: where the repository has them -> where the site has them.
OUTSIDE = {
    "README.md": "index.md",
    "BENCHMARKS.md": "BENCHMARKS.md",
    "benchmarks/ceilings.md": "ceilings.md",
    "CHANGELOG.md": "CHANGELOG.md",
    "CONTRIBUTING.md": "CONTRIBUTING.md",
    "LICENSE": "LICENSE.md",
}
# A Markdown link or image's target, up to an optional title: ](target) or ](target "title").
LINK = re.compile(r"\]\((?P<target>[^)\s]+)(?P<rest>(?:\s+\"[^\"]*\")?\))")
EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//|#)", re.IGNORECASE)


def repository(config: MkDocsConfig) -> Path:
    """The repository's root: the folder of mkdocs.yml."""
    return Path(config.config_file_path).parent


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add the pages kept outside docs/ (LICENSE, plain text, as a page that shows it)."""
    root = repository(config)
    for source, uri in OUTSIDE.items():
        path = root / source
        if path.suffix == ".md":
            files.append(File.generated(config, uri, abs_src_path=str(path)))
        else:
            text = path.read_text(encoding="utf-8")
            files.append(File.generated(config, uri, content=f"# License\n\n```text\n{text}```\n"))
    return files


def repository_path(site_uri: str) -> str:
    """Where the repository keeps the page the site has at `site_uri`."""
    for source, uri in OUTSIDE.items():
        if uri == site_uri:
            return source
    return posixpath.join(DOCS, site_uri)


def site_uri(path: str, files: Files) -> str | None:
    """Where the site has the file the repository keeps at `path` (None: not in the site)."""
    if path in OUTSIDE:
        return OUTSIDE[path]
    if path in (DOCS, DOCS + "/"):
        return OUTSIDE["README.md"]  # the docs' index is the home page
    inside = posixpath.relpath(path, DOCS)
    if not inside.startswith("../") and files.get_file_from_path(inside) is not None:
        return inside
    return None


def rewrite(markdown: str, page_uri: str, files: Files) -> str:
    """The page's links to files the site holds, made relative to the page's place in the site."""
    folder = posixpath.dirname(repository_path(page_uri))
    here = posixpath.dirname(page_uri)

    def relink(match: re.Match[str]) -> str:
        target = match["target"]
        if EXTERNAL.match(target):
            return match[0]
        path, hash_, anchor = target.partition("#")
        found = site_uri(posixpath.normpath(posixpath.join(folder, path)), files)
        if found is None:
            return match[0]
        return f"]({posixpath.relpath(found, here or '.')}{hash_}{anchor}{match['rest']}"

    return LINK.sub(relink, markdown)


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files,
                     **_: Any) -> str:  # fmt: skip
    """Links written for the repository's layout, pointed where the site has their pages."""
    return rewrite(markdown, page.file.src_uri, files)
