"""One source for every figure: a performance figure the docs quote must be in a source.

A figure is a number with a unit of performance: ms, µs, a rate (records/s, requests/s, PUTs/s,
"records per second" …), MB/s, a size (bytes, B, KB, MB, GB, TB), a ratio (20.7x, with an x or
a times sign), a percentage or cores. Counts ("40 records"), settings in code (`BATCH_SIZE=1024`),
sizes in binary units (a limit: 256 KiB) and seconds are not figures.

The sources are the files that hold what the repository's commands printed: BENCHMARKS.md
(`streamfn bench`, `benchmarks/bench_*.py`) and benchmarks/ceilings.md (`streamfn bench-ceilings`).
A doc's figure passes when a source has the same value in the same unit (the doc may round it:
14.7 ms is quoted as 14.7 or 15, never as 15.8). Beside them:

- A fenced code block is a command and what it printed, real output by definition: its figures
  are not checked, and the prose of the same doc may quote them (a walk-through's own numbers).
- A block between `<!-- figures: derived: <how> -->` and `<!-- /figures -->` is arithmetic on
  sourced figures with every step shown (docs/SCALING.md's sizing): its figures are not checked
  one by one, and any doc may quote them.
- ALLOWED names the few figures that no command here measures (a cloud's published limit), each
  with its reason.

In a table, a bare number takes the unit its column's header names ("p99 ms", "records/s"), or
else its row's first cell; "p99 ms 43" (a unit, then its number) is read as 43 ms.

Run: `python -m streamfn.docs.figures [ROOT] [--docs DIR]`: prints each figure that no source
has, exits 1 if there is one (`make docs`; tests/docs/test_figures.py).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

SOURCES = ("BENCHMARKS.md", "benchmarks/ceilings.md")
# What a figure's number may look like: 5,256 or 14.7 or 0.88; the sign is dropped (a change of
# -0.5% quotes the same 0.5 as the source's -0.5%).
NUMBER = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
# Not part of a word, a version, an id or a date: p99, v1, 7.0.15, 1764…-2, 2026-12-03.
BEFORE = r"(?<![\w.,:/#\-\u2013])"  # \u2013: an en dash
AFTER = r"(?![\d]|[.,]\d)"
COUNTED = (r"records|requests|entries|rows|messages|objects|PUTs|GETs|invocations|calls|writes"
           r"|reads|labels|predictions|batches|refreshes")  # fmt: skip
# (pattern, canonical unit), tried in order at a number's end; every pattern ends at a word's end.
UNITS: tuple[tuple[str, str], ...] = (
    (rf"(?:{COUNTED})(?:/s| per second| a second| each second)", "/s"),
    (r"[KMGT]B/s", "{}"),
    (r"/s", "/s"),
    (r"ms", "ms"),
    (r"[µμ]s", "µs"),
    (r"bytes?|B", "B"),
    # Decimal units only: the docs write limits and settings in binary ones (a Kubernetes quantity,
    # SQS's 256 KiB), measurements in decimal ones (the commands print MB, 10^6 bytes).
    (r"KB|kB|MB|GB|TB", "{}"),
    # A ratio (x or the times sign, \u00d7) is written on its number (20.7x) or ends a phrase
    # (2.7 x |); "1000 x lagCount", spaced and followed by a word, is a product.
    (r"(?<=\d)[x\u00d7]|(?<= )[x\u00d7](?=\s*(?:$|[|,;.)]))", "x"),
    (r"%", "%"),
    (r"cores?|of a core|of one core|vCPUs?", "cores"),
)
# Each unit in a group of its own (u0, u1 …): the group that matched names the canonical unit.
UNIT = "|".join(f"(?P<u{i}>{pattern})" for i, (pattern, _) in enumerate(UNITS))
# Numbers that share the unit written after the last: "0.18 and 0.25 ms", "100-200 ms".
JOINED = r"(?:, and |, | and | to | or | / |-|\u2013)"
FIGURES = re.compile(
    rf"{BEFORE}(?:[+\-\u2212](?=\d))?(?P<numbers>(?:{NUMBER}){AFTER}(?:{JOINED}(?:{NUMBER}){AFTER})*)"
    rf" ?(?P<unit>{UNIT})(?![\w/])"
)
# A unit, then its number: "p99 ms 43", "redis µs/entry 3.6", "result key B 344", "cores 0.97".
LABELLED_UNITS = {"ms": "ms", "µs": "µs", "μs": "µs", "B": "B", "cores": "cores"}
LABELLED = re.compile(rf"(?<![\w/])(?P<label>{'|'.join(LABELLED_UNITS)})(?:/\w+)?"
                      rf" (?P<numbers>{NUMBER}){AFTER}")  # fmt: skip
# A table header's or row label's unit: a unit word standing alone, not after a number.
LABEL_UNIT = re.compile(rf"(?<![\d,.] )(?<![\d\w,.])(?P<unit>{UNIT})(?![\w])")
ONE_NUMBER = re.compile(rf"{BEFORE}(?:[+\-\u2212](?=\d))?(?P<number>{NUMBER}){AFTER}")
FENCE = re.compile(r"^\s*(```|~~~)")
DERIVED_OPEN = re.compile(r"<!--\s*figures:\s*derived:\s*(?P<how>.+?)\s*-->")
DERIVED_CLOSE = re.compile(r"<!--\s*/figures\s*-->")
# Inline code (commands, settings), link targets and HTML comments hold no quoted figure.
HIDDEN = re.compile(r"`[^`\n]*`|\]\([^)\s]*\)|<!--.*?-->|<https?://[^>]*>")

# Figures no command in this repository measures: (doc, value, unit) -> why it may stand.
ALLOWED: dict[tuple[str, str, str], str] = {
    ("SCALING.md", "8", "MB"): "the bound bench-ceilings keeps a pipeline of XADDs under",
    ("deployment.md", "30", "MB"): "the zip functions' unzipped size, printed by `make validate`",
    ("deployment.md", "2", "MB"): "swagger-ui's files in the package (streamfn/ingest/static)",
    ("deviations.md", "55", "%"): "MEMORY USAGE's sampling error, measured once by hand (ef4f2d7)",
    ("estimates.md", "20", "%"): "the held-out share of the data, a setting of streamfn train",
    ("event-sources.md", "5", "/s"): "Kinesis' published GetRecords limit per shard",
    ("models.md", "137", "MB"): "arithmetic: 1,000 rows by 17,193 distances of 8 bytes",
}


@dataclass(frozen=True)
class Figure:
    """A number with a unit of performance, where a file has it."""

    value: Decimal
    unit: str
    text: str
    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.text!r} ({self.value} {self.unit})"


@dataclass(frozen=True)
class Part:
    """A stretch of a Markdown file: prose, a fenced block, or a derived block."""

    kind: str  # "prose", "fenced" or "derived"
    first_line: int
    lines: tuple[str, ...]


def canonical(match: re.Match[str]) -> str:
    """The unit a match wrote, as compared: records/s and requests per second are both /s."""
    if match.groupdict().get("label"):
        return LABELLED_UNITS[match["label"]]
    for i, (_, name) in enumerate(UNITS):
        written = match.groupdict().get(f"u{i}")
        if written is not None:
            return written.replace("kB", "KB") if name == "{}" else name
    raise ValueError(match[0])


def values(numbers: str) -> list[Decimal]:
    """The numbers in "5,256" or "0.18 and 0.25" or "100-200"."""
    return [Decimal(n.replace(",", "")) for n in re.findall(NUMBER, numbers)]


class UnclosedBlockError(ValueError):
    """A fenced or derived block runs to the end of its file (it would exempt all that follows)."""


def parts(text: str) -> list[Part]:
    """A Markdown file cut into prose, fenced blocks and derived blocks."""
    found: list[Part] = []
    kind, start, lines = "prose", 1, []
    for number, line in enumerate(text.splitlines(), start=1):
        fence = FENCE.match(line)
        opens = kind == "prose" and (fence or DERIVED_OPEN.search(line))
        closes = (kind == "fenced" and fence) or (kind == "derived" and DERIVED_CLOSE.search(line))
        if opens:
            found.append(Part(kind, start, tuple(lines)))
            kind, start, lines = ("fenced" if fence else "derived"), number, [line]
        elif closes:
            found.append(Part(kind, start, (*lines, line)))
            kind, start, lines = "prose", number + 1, []
        else:
            lines.append(line)
    if kind != "prose":
        raise UnclosedBlockError(f"the {kind} block opened at line {start} is never closed")
    found.append(Part(kind, start, tuple(lines)))
    return [p for p in found if p.lines]


def cells(line: str) -> list[str]:
    """A table row's cells (a backslash-escaped pipe stays in its cell)."""
    inner = line.strip().removeprefix("|").removesuffix("|")
    return [c.strip() for c in re.split(r"(?<!\\)\|", inner)]


def label_unit(label: str) -> str | None:
    """The unit a header or row label names on its own ("p99 ms", "records/s"), if any."""
    bare = FIGURES.sub(" ", HIDDEN.sub(" ", label))
    bare = re.sub(r"(?<=[^\W\d_])\d+", "N", bare)  # p99, S3: a name, not a number before a unit
    found = LABEL_UNIT.search(bare)
    return canonical(found) if found else None


def inline(text: str, path: str, line: int) -> Iterator[tuple[Figure, tuple[int, int]]]:
    """The figures written with their unit in a stretch of text, and where each sits."""
    for match in FIGURES.finditer(text):
        unit = canonical(match)
        for value in values(match["numbers"]):
            yield Figure(value, unit, match[0], path, line), match.span()
    for match in LABELLED.finditer(text):
        for value in values(match["numbers"]):
            yield Figure(value, canonical(match), match[0], path, line), match.span()


def figures_in(lines: Sequence[str], path: str, first_line: int = 1) -> Iterator[Figure]:
    """Every figure in lines of Markdown (prose and tables; no fenced block)."""
    header: list[str] = []
    for offset, raw in enumerate(lines):
        number = first_line + offset
        text = HIDDEN.sub(lambda m: " " * len(m[0]), raw)
        if not text.lstrip().startswith("|"):
            header = []
            yield from (figure for figure, _ in inline(text, path, number))
            continue
        row = cells(text)
        if not header:
            header = row
            continue
        if all(re.fullmatch(r":?-+:?", c) for c in row if c):
            continue
        row_unit = label_unit(row[0]) if row else None
        for index, cell in enumerate(row):
            found = list(inline(cell, path, number))
            yield from (figure for figure, _ in found)
            unit = (label_unit(header[index]) if index < len(header) else None) or row_unit
            if unit is None or index == 0:
                continue
            taken = [span for _, span in found]
            for match in ONE_NUMBER.finditer(cell):
                if not any(a <= match.start() < b for a, b in taken):
                    yield Figure(Decimal(match["number"].replace(",", "")), unit,
                                 f"{match[0]} ({unit})", path, number)  # fmt: skip


def file_figures(path: Path, name: str) -> dict[str, list[Figure]]:
    """A Markdown file's figures by kind of part: prose, fenced, derived."""
    found: dict[str, list[Figure]] = {"prose": [], "fenced": [], "derived": []}
    try:
        cut = parts(path.read_text(encoding="utf-8"))
    except UnclosedBlockError as error:
        raise UnclosedBlockError(f"{name}: {error}") from None
    for part in cut:
        lines = part.lines
        if part.kind == "fenced":
            # Output is read as prose is (its tables too), to be quoted by the prose around it.
            lines = tuple(line for line in lines if not FENCE.match(line))
        found[part.kind] += figures_in(lines, name, part.first_line)
    return found


def matches(figure: Figure, known: Iterable[Figure]) -> bool:
    """A known figure has the same unit and, at the figure's precision, the same value."""
    places = -figure.value.as_tuple().exponent if figure.value.as_tuple().exponent < 0 else 0
    step = Decimal(1).scaleb(-places)
    for source in known:
        if source.unit == figure.unit and (
            source.value == figure.value or source.value.quantize(step) == figure.value
        ):
            return True
    return False


def docs_of(root: Path) -> list[Path]:
    """The docs to check: the README and every Markdown file in docs/."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def name_of(path: Path, root: Path) -> str:
    """A path as the report names it (relative to the repository where it can be)."""
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def unsourced(root: Path, docs: Sequence[Path] | None = None) -> list[Figure]:
    """Every figure of the docs that no source, no derived block and no fenced block of its own
    doc has, and that ALLOWED does not name."""
    docs = list(docs) if docs is not None else docs_of(root)
    known: list[Figure] = []
    for source in SOURCES:
        for figures in file_figures(root / source, source).values():
            known += figures
    read = {path: file_figures(path, name_of(path, root)) for path in docs}
    for figures in read.values():
        known += figures["derived"]
    missing = []
    for path, figures in read.items():
        own = known + figures["fenced"]
        for figure in figures["prose"]:
            allowed = (path.name, str(figure.value), figure.unit) in ALLOWED
            if not allowed and not matches(figure, own):
                missing.append(figure)
    return missing


def main(argv: Sequence[str] | None = None) -> int:
    """Print each unsourced figure; exit 1 if there is one."""
    parser = argparse.ArgumentParser(
        prog="python -m streamfn.docs.figures", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("root", nargs="?", type=Path, default=Path("."),
                        help="the repository, whose sources are read (default: .)")  # fmt: skip
    parser.add_argument("--docs", type=Path,
                        help="check this folder's *.md against ROOT's sources, instead of ROOT's "
                             "README.md and docs/ (another branch's docs, say)")  # fmt: skip
    args = parser.parse_args(argv)
    docs = sorted(args.docs.glob("*.md")) if args.docs else docs_of(args.root)
    try:
        missing = unsourced(args.root, docs)
    except UnclosedBlockError as error:
        print(error)
        return 1
    for figure in missing:
        print(f"{figure}: in no source ({', '.join(SOURCES)}); quote a source's value or name "
              "where it comes from")  # fmt: skip
    print(f"{len(missing)} figure(s) without a source in {len(docs)} file(s)")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
