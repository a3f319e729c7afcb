"""`streamfn produce`'s summary: every accepted record's label is joined, not joined, or there
was none to send, and the columns say which."""

from __future__ import annotations

import asyncio

import httpx
import orjson
import pytest

from streamfn.cli.produce import print_tally
from streamfn.data.labels import LabelSender
from streamfn.data.plan import Plan, Tally


def counted(request: httpx.Request) -> httpx.Response:
    """The ingest's POST /feedback: every label joined and counted."""
    labels = orjson.loads(request.content)["labels"]
    return httpx.Response(202, json={"joined": len(labels), "counted": len(labels)})


def test_records_without_a_burn_rate_are_counted_as_having_no_label() -> None:
    tally = Tally(sent=5, accepted=5)

    async def send() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(counted)) as client:
            sender = LabelSender(client, "http://ingest/feedback", {}, tally, give_up_s=1)
            sender.send("1-0", [0.4, None, 0.7])
            sender.send("2-0", [None, None])
            await sender.drain()

    asyncio.run(send())
    assert (tally.labelled, tally.unlabelled, tally.no_label) == (2, 0, 3)
    assert tally.as_dict()["no_label"] == 3


def test_the_summary_names_what_each_label_column_counts(
    capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # each header on one line
    tally = Tally(requests=3, sent=300, accepted=300, labelled=270, unlabelled=0, no_label=30)
    tally.finished = tally.started + 2.0
    print_tally(Plan(count=300, labels=True), tally)
    header, values = [line for line in capsys.readouterr().out.splitlines() if "┃" in line
                      or "│" in line][:2]  # fmt: skip
    columns = [c.strip() for c in header.strip("┃ ").split("┃")]
    cells = [c.strip() for c in values.strip("│ ").split("│")]
    shown = dict(zip(columns, cells, strict=True))
    assert "unlabelled" not in shown
    assert (shown["labels joined"], shown["labels not joined"], shown["no label"]) == (
        "270", "0", "30"
    )  # fmt: skip
    assert int(shown["labels joined"]) + int(shown["no label"]) == int(shown["accepted"])
