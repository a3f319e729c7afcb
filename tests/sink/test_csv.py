"""The CSV rows of the predictions: columns, cells, times, round trips."""

from __future__ import annotations

import csv
import dataclasses
import io

import pandas as pd
import pyarrow.parquet as pq
import pytest

from streamfn.core.clock import iso_ms
from streamfn.models.schemas import Column, ModelSchema, seed_schema
from streamfn.models.seed import FEATURE_NAMES
from streamfn.sink.formats.base import format_named
from streamfn.sink.formats.csv import encode as encode_csv
from streamfn.sink.rows import SEED_COLUMNS as CSV_COLUMNS
from streamfn.sink.rows import Row
from tests.factories import full_record

RECEIVED = 1764141569123  # 2025-11-26T07:19:29.123Z
PREDICTED = 1764141569405
# Values chosen to exercise number formatting (7.25, 1.5, 3.0) in the exact-line assertions.
FULL: dict[str, object] = full_record(
    **{
        "Resource Allocation": 3.0,
        "Work Hours per Week": 45,
        "Sleep Hours": 7.25,
        "Work-Life Balance Score": 3,
        "Team Size": 12,
        "Recognition Frequency": 1.5,
    }
)

SEED = seed_schema("lightgbm", "LightGBM_Classifier", "3")
CSV = format_named("csv")


def row(record: dict[str, object], prediction: int = 1, index: int = 0) -> Row:
    """A row of message 1764141569123-0 predicted by lightgbm version 3."""
    return Row(
        "1764141569123-0", index, "lightgbm", "LightGBM_Classifier", "3",
        prediction, RECEIVED, PREDICTED, record,
    )  # fmt: skip


def lines(body: bytes) -> list[str]:
    """The CSV lines of a body without quoted line breaks."""
    text = body.decode("utf-8")
    assert text.endswith("\r\n")
    return text.split("\r\n")[:-1]


def parsed(body: bytes) -> list[list[str]]:
    """The body read back by the csv module."""
    return list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))


# ---------------------------------------------------------------- encoding


def test_columns_are_the_spec_order() -> None:
    assert CSV_COLUMNS == (
        "message_id", "record_index", "model", "registered_model", "model_version",
        "prediction", "prediction_label", "received_at", "predicted_at", "imputed",
        "Employee ID", "Gender", "Company Type", "WFH Setup Available", "Designation",
        "Resource Allocation", "Mental Fatigue Score", "Work Hours per Week", "Sleep Hours",
        "Work-Life Balance Score", "Manager Support Score", "Deadline Pressure Score",
        "Team Size", "Recognition Frequency",
    )  # fmt: skip
    assert encode_csv(SEED, []) == (",".join(CSV_COLUMNS) + "\r\n").encode()


def test_full_record_row() -> None:
    body = encode_csv(SEED, [row(FULL, prediction=2, index=4)])
    assert lines(body)[1] == (
        "1764141569123-0,4,lightgbm,LightGBM_Classifier,3,2,High,"
        "2025-11-26T07:19:29.123Z,2025-11-26T07:19:29.405Z,,fffe32003000360033003200,"
        "Female,Service,No,2,3.0,3.8,45,7.25,3,4,2,12,1.5"
    )


def test_partial_record_row_names_imputed_features_in_table_order() -> None:
    record = {"Team Size": 7, "Gender": "Male", "Sleep Hours": None, "Designation": 1}
    body = encode_csv(SEED, [row(record, prediction=0)])
    cells = dict(zip(CSV_COLUMNS, parsed(body)[1], strict=True))
    absent = [n for n in FEATURE_NAMES if n not in ("Gender", "Designation", "Team Size")]
    assert cells["imputed"] == "|".join(absent)
    assert cells["imputed"].startswith("Company Type|WFH Setup Available|Resource Allocation|")
    assert cells["Employee ID"] == ""
    assert [cells[n] for n in absent] == [""] * 10
    assert (cells["Gender"], cells["Designation"], cells["Team Size"]) == ("Male", "1", "7")
    assert cells["prediction_label"] == "Low"


def test_labels_follow_the_classes() -> None:
    body = encode_csv(SEED, [row(FULL, prediction=p, index=p) for p in (0, 1, 2)])
    assert [r[5:7] for r in parsed(body)[1:]] == [["0", "Low"], ["1", "Medium"], ["2", "High"]]


@pytest.mark.parametrize("prediction", [-1, 3])
def test_a_prediction_outside_the_classes_is_refused(prediction: int) -> None:
    with pytest.raises(ValueError, match="not a class"):
        encode_csv(SEED, [row(FULL, prediction=prediction)])


def test_times_are_iso_utc_with_milliseconds() -> None:
    assert iso_ms(RECEIVED) == "2025-11-26T07:19:29.123Z"
    assert iso_ms(1764141569005) == "2025-11-26T07:19:29.005Z"
    assert iso_ms(0) == "1970-01-01T00:00:00.000Z"
    stamps = pd.to_datetime(pd.Series([iso_ms(RECEIVED), iso_ms(PREDICTED)]), utc=True)
    assert [s.value // 1_000_000 for s in stamps] == [RECEIVED, PREDICTED]


AWKWARD_IDS = [
    "Smith, John",
    'say "hi"',
    "line1\nline2",
    "carriage\rreturn",
    "crlf\r\nend",
    "Zoë Ω 雪",
    " padded ",
    "=1+1",
    "",
]


def test_awkward_employee_ids_round_trip_through_csv_reader() -> None:
    rows = [row({**FULL, "Employee ID": e}, index=i) for i, e in enumerate(AWKWARD_IDS)]
    body = encode_csv(SEED, rows)
    assert b'"Smith, John"' in body
    assert b'"say ""hi"""' in body
    assert "Zoë Ω 雪".encode() in body
    assert not body.startswith(b"\xef\xbb\xbf")  # no BOM
    back = parsed(body)
    assert len(back) == 1 + len(AWKWARD_IDS)
    # A spreadsheet would run "=1+1": the cell is written behind a quote, and read back without.
    assert [r[10] for r in back[1:]] == [("'" + e if e == "=1+1" else e) for e in AWKWARD_IDS]
    assert [r[10] for r in CSV.table(body)[1]] == AWKWARD_IDS
    assert all(len(r) == len(CSV_COLUMNS) for r in back)


def test_round_trip_through_pandas() -> None:
    rows = [row({**FULL, "Employee ID": e}, index=i) for i, e in enumerate(AWKWARD_IDS)]
    rows.append(row({"Sleep Hours": 6}, index=len(rows)))
    frame = pd.read_csv(io.BytesIO(encode_csv(SEED, rows)), dtype=str, keep_default_na=False)
    assert tuple(frame.columns) == CSV_COLUMNS
    assert frame["Employee ID"].tolist() == [*AWKWARD_IDS[:7], "'=1+1", "", ""]
    assert frame["record_index"].tolist() == [str(i) for i in range(len(rows))]
    assert frame["Recognition Frequency"].tolist() == ["1.5"] * len(AWKWARD_IDS) + [""]
    numbers = pd.read_csv(io.BytesIO(encode_csv(SEED, rows)))
    assert numbers["Work Hours per Week"].iloc[0] == 45
    assert numbers["imputed"].iloc[-1] == "|".join(n for n in FEATURE_NAMES if n != "Sleep Hours")


# What a spreadsheet runs as a formula (OWASP, CSV injection), and what it leaves alone.
FORMULAS = ['=HYPERLINK("http://evil.example","click")', "+1+2", "-2+3", "@SUM(A1:A2)",
            "\tcmd", "\rcmd", "'=already quoted", "''+twice"]  # fmt: skip
HARMLESS = ["safe", "'quoted", "''", "a=b", "", "1-2"]
# Someone else's model: a free string input, a number that may be negative, string classes.
FREE = ModelSchema("spend", "Spend", "4", (
    Column("plan", "string"), Column("amount", "number"), Column("=odd name", "number"),
), output="class", labels={"-1": "-1", "up": "up"})  # fmt: skip


def free_row(index: int, plan: str | None, prediction: str = "up") -> Row:
    return Row(f"9-{index}", index, "spend", "Spend", "4", prediction, RECEIVED, PREDICTED,
               {"plan": plan, "amount": -1.5, "Employee ID": plan})  # fmt: skip


def test_text_cells_a_spreadsheet_would_run_are_written_behind_a_quote() -> None:
    rows = [free_row(i, text) for i, text in enumerate(FORMULAS + HARMLESS)]
    rows.append(free_row(len(rows), "x", prediction="-1"))
    body = encode_csv(FREE, rows)
    header, *cells = parsed(body)
    at = {name: header.index(name) for name in ("plan", "Employee ID", "amount", "prediction")}
    assert header[at["amount"] + 1] == "'=odd name"  # a column name is a cell too
    for text, written in zip(FORMULAS + HARMLESS, cells, strict=False):
        expected = "'" + text if text in FORMULAS else text
        assert (written[at["plan"]], written[at["Employee ID"]]) == (expected, expected), text
        assert written[at["amount"]] == "-1.5"  # a number is never escaped
    assert cells[-1][at["prediction"]] == "'-1"
    assert cells[-1][header.index("prediction_label")] == "'-1"
    assert "=odd name" in cells[0][header.index("imputed")]  # "'" + "=odd name" at the start
    # Read back as they were sent, by the table and by the frame.
    back_header, back = CSV.table(body)
    assert back_header[at["amount"] + 1] == "=odd name"
    assert [r[at["plan"]] for r in back][:-1] == [*FORMULAS, *HARMLESS]
    frame = CSV.frame([body], ["plan", "Employee ID", "prediction"])
    assert frame["plan"].fillna("").tolist()[:-1] == [*FORMULAS, *HARMLESS]
    assert frame["prediction"].tolist()[-1] == "-1"
    assert frame["amount"].tolist() == [-1.5] * len(rows)
    assert "=odd name" in frame.columns


def test_an_unlabelled_class_is_escaped_as_its_label_too() -> None:
    unlabelled = dataclasses.replace(FREE, labels={})
    header, cells = parsed(encode_csv(unlabelled, [free_row(0, "x", prediction="=cmd")]))
    assert cells[header.index("prediction")] == cells[header.index("prediction_label")] == "'=cmd"


def test_parquet_keeps_text_as_sent() -> None:
    parquet = format_named("parquet")
    rows = [free_row(i, text) for i, text in enumerate(FORMULAS)]
    stored = pq.read_table(io.BytesIO(parquet.encode(FREE, rows, (), False)))
    assert stored.column("plan").to_pylist() == FORMULAS
    assert stored.column("Employee ID").to_pylist() == FORMULAS


def test_a_large_mixed_batch_encodes_every_row() -> None:
    partial = {k: v for k, v in FULL.items() if k != "Sleep Hours"}
    rows = [row(FULL if i % 2 else partial, i % 3, i) for i in range(1000)]
    parsed = list(csv.DictReader(io.StringIO(encode_csv(SEED, rows).decode())))
    assert [int(r["record_index"]) for r in parsed] == list(range(1000))
    assert [r["imputed"] for r in parsed[:2]] == ["Sleep Hours", ""]


# ---------------------------------------------------------------- object keys
