"""streamfn.schema: the POST /predict_stream body, its refusals (422/413) and canonical records."""

from __future__ import annotations

import math
import random
from typing import Any

import orjson
import pytest

from streamfn.api.responses import BodyError
from streamfn.ingest.validation import MAX_ERRORS, MAX_LEARNT_KEYS, Validator
from streamfn.models.schemas import seed_schema
from streamfn.models.seed import EMPLOYEE_ID, FEATURE_NAMES, FEATURES

SEED = Validator(seed_schema())
parse_body = SEED.parse_body
validate_records = SEED.validate_records

MAX = 3
GOOD = {"Sleep Hours": 7}

FULL: dict[str, Any] = {
    "Gender": "Female",
    "Company Type": "Service",
    "WFH Setup Available": "No",
    "Designation": 2,
    "Resource Allocation": 4.0,
    "Mental Fatigue Score": 5.5,
    "Work Hours per Week": 40,
    "Sleep Hours": 7.25,
    "Work-Life Balance Score": 3,
    "Manager Support Score": 4.5,
    "Deadline Pressure Score": 1,
    "Team Size": 12,
    "Recognition Frequency": 0,
}


def _body(*records: object) -> bytes:
    return orjson.dumps({"data": list(records)})


def _refusal(raw: bytes, max_records: int = MAX) -> BodyError:
    with pytest.raises(BodyError) as info:
        parse_body(raw, max_records)
    return info.value


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# (id, raw body, status, loc of the first error, fragments its msg must contain, its type)
BAD_BODIES: list[tuple[str, bytes, int, list[Any], list[str], str]] = [
    # --- not JSON, or not the right envelope
    (
        "malformed-json",
        b'{"data": [',
        422,
        ["body", 10],
        ["Malformed JSON", "char 10"],
        "json_invalid",
    ),
    ("empty-body", b"", 422, ["body", 0], ["Malformed JSON"], "json_invalid"),
    ("trailing-garbage", b'{"data": []} x', 422, ["body", 13], ["Malformed JSON"], "json_invalid"),
    (
        "nan-literal",
        b'{"data": [{"Sleep Hours": NaN}]}',
        422,
        ["body", 26],
        ["Malformed JSON"],
        "json_invalid",
    ),
    (
        "infinity-literal",
        b'{"data": [{"Sleep Hours": Infinity}]}',
        422,
        ["body", 26],
        ["Malformed JSON"],
        "json_invalid",
    ),
    (
        "1e400-is-infinite",
        b'{"data": [{"Sleep Hours": 1e400}]}',
        422,
        ["body", 26],
        ["Malformed JSON", "infinity", "char"],
        "json_invalid",
    ),
    (
        "-1e400-is-infinite",
        b'{"data": [{"Team Size": -1e400}]}',
        422,
        ["body", 24],
        ["Malformed JSON", "infinity", "char"],
        "json_invalid",
    ),
    (
        "nested-5000-whole-body",
        _nested(5000),
        422,
        ["body", 1025],
        ["Malformed JSON", "depth"],
        "json_invalid",
    ),
    (
        "nested-5000-as-value",
        b'{"data": [{"Sleep Hours": ' + _nested(5000) + b"}]}",
        422,
        ["body", 1048],
        ["Malformed JSON", "depth"],
        "json_invalid",
    ),
    ("string-body", b'"hello"', 422, ["body"], ["JSON object", "string 'hello'"], "dict_type"),
    ("list-body", b'[{"Sleep Hours": 7}]', 422, ["body"], ["JSON object", "array"], "dict_type"),
    ("null-body", b"null", 422, ["body"], ["JSON object", "null"], "dict_type"),
    ("missing-data", b"{}", 422, ["body", "data"], ["missing key 'data'"], "missing"),
    (
        "unknown-top-level-key",
        orjson.dumps({"data": [GOOD], "model": "svm"}),
        422,
        ["body", "model"],
        ["unknown top-level key 'model'"],
        "extra_forbidden",
    ),
    (
        "Data-capitalised",
        orjson.dumps({"Data": [GOOD]}),
        422,
        ["body", "Data"],
        ["unknown top-level key 'Data'"],
        "extra_forbidden",
    ),
    (
        "data-is-object",
        orjson.dumps({"data": GOOD}),
        422,
        ["body", "data"],
        ["array of records", "object"],
        "list_type",
    ),
    (
        "data-is-string",
        orjson.dumps({"data": "x"}),
        422,
        ["body", "data"],
        ["array of records", "string 'x'"],
        "list_type",
    ),
    (
        "data-is-null",
        orjson.dumps({"data": None}),
        422,
        ["body", "data"],
        ["array of records", "null"],
        "list_type",
    ),
    ("data-empty", _body(), 422, ["body", "data"], ["at least one record"], "too_short"),
    (
        "too-many-records",
        _body(GOOD, GOOD, GOOD, GOOD),
        413,
        ["body", "data"],
        ["4 sent", "at most 3"],
        "too_many_records",
    ),
    # --- a record that is not a record
    (
        "record-is-number",
        _body(GOOD, 5),
        422,
        ["body", "data", 1],
        ["record 1", "expected an object", "number 5"],
        "dict_type",
    ),
    (
        "record-is-list",
        _body([GOOD]),
        422,
        ["body", "data", 0],
        ["record 0", "expected an object", "array"],
        "dict_type",
    ),
    (
        "empty-record",
        _body(GOOD, {}),
        422,
        ["body", "data", 1],
        ["record 1", "no feature"],
        "no_features",
    ),
    (
        "only-employee-id",
        _body({EMPLOYEE_ID: "e1"}),
        422,
        ["body", "data", 0],
        ["record 0", "no feature"],
        "no_features",
    ),
    (
        "only-nulls",
        _body({"Sleep Hours": None, "Gender": None}),
        422,
        ["body", "data", 0],
        ["record 0", "no feature"],
        "no_features",
    ),
    # --- keys
    (
        "typo-did-you-mean",
        _body({"Sleep Hourz": 7}),
        422,
        ["body", "data", 0, "Sleep Hourz"],
        ["record 0", "'Sleep Hourz'", "unknown field", "did you mean 'Sleep Hours'?"],
        "extra_forbidden",
    ),
    (
        "typo-snake-did-you-mean",
        _body(GOOD, {"mental_fatige_score": 3}),
        422,
        ["body", "data", 1, "mental_fatige_score"],
        ["record 1", "did you mean 'Mental Fatigue Score'?"],
        "extra_forbidden",
    ),
    (
        "typo-employee-id",
        _body({"EmployeeID": "e", "Team Size": 3}),
        422,
        ["body", "data", 0, "EmployeeID"],
        ["did you mean 'Employee ID'?"],
        "extra_forbidden",
    ),
    (
        "unknown-key-no-hint",
        _body({"Sleep Hours": 7, "zzz": 1}),
        422,
        ["body", "data", 0, "zzz"],
        ["record 0", "'zzz'", "unknown field"],
        "extra_forbidden",
    ),
    (
        "dup-case-only",
        b'{"data": [{"Sleep Hours": 7, "sleep hours": 8}]}',
        422,
        ["body", "data", 0, "sleep hours"],
        ["record 0", "duplicate", "'Sleep Hours'"],
        "duplicate_field",
    ),
    (
        "dup-underscore-and-null",
        b'{"data": [{"Sleep Hours": null, "SLEEP_HOURS": 8}]}',
        422,
        ["body", "data", 0, "SLEEP_HOURS"],
        ["duplicate", "'Sleep Hours'"],
        "duplicate_field",
    ),
    (
        "dup-hyphen",
        b'{"data": [{"Work-Life Balance Score": 3, "work_life_balance_score": 3}]}',
        422,
        ["body", "data", 0, "work_life_balance_score"],
        ["duplicate", "'Work-Life Balance Score'"],
        "duplicate_field",
    ),
    # --- numbers
    (
        "string-for-number",
        _body({"Sleep Hours": "7"}),
        422,
        ["body", "data", 0, "Sleep Hours"],
        ["record 0", "'Sleep Hours'", "expected a number", "string '7'"],
        "number_type",
    ),
    (
        "string-NaN",
        _body({"Sleep Hours": "NaN"}),
        422,
        ["body", "data", 0, "Sleep Hours"],
        ["expected a number", "string 'NaN'"],
        "number_type",
    ),
    (
        "string-Infinity",
        _body({"Team_Size": "Infinity"}),
        422,
        ["body", "data", 0, "Team_Size"],
        ["expected a number", "string 'Infinity'"],
        "number_type",
    ),
    (
        "bool-true",
        _body({"Team Size": True}),
        422,
        ["body", "data", 0, "Team Size"],
        ["expected a number", "boolean true"],
        "number_type",
    ),
    (
        "bool-false-in-range",
        _body({"designation": False}),
        422,
        ["body", "data", 0, "designation"],
        ["expected a number", "boolean false"],
        "number_type",
    ),
    (
        "list-for-number",
        _body({"Sleep Hours": [7]}),
        422,
        ["body", "data", 0, "Sleep Hours"],
        ["expected a number", "array"],
        "number_type",
    ),
    (
        "object-for-number",
        _body({"Sleep Hours": {"v": 7}}),
        422,
        ["body", "data", 0, "Sleep Hours"],
        ["expected a number", "object"],
        "number_type",
    ),
    (
        "nested-100-as-value",
        b'{"data": [{"Sleep Hours": ' + _nested(100) + b"}]}",
        422,
        ["body", "data", 0, "Sleep Hours"],
        ["expected a number", "array"],
        "number_type",
    ),
    (
        "huge-float",
        _body({"Team Size": 1e300}),
        422,
        ["body", "data", 0, "Team Size"],
        ["out of range [1, 1000]"],
        "out_of_range",
    ),
    (
        "huge-int-1e30",
        b'{"data": [{"Team Size": 1000000000000000000000000000000}]}',
        422,
        ["body", "data", 0, "Team Size"],
        ["out of range [1, 1000]"],
        "out_of_range",
    ),
    (
        "huge-int-u64",
        b'{"data": [{"Team Size": 18446744073709551615}]}',
        422,
        ["body", "data", 0, "Team Size"],
        ["huge integer", "out of range [1, 1000]"],
        "out_of_range",
    ),
    (
        "sleep-high",
        _body({"Sleep Hours": 24.01}),
        422,
        ["body", "data", 0, "Sleep Hours"],
        ["record 0", "number 24.01", "out of range [0, 24]"],
        "out_of_range",
    ),
    (
        "sleep-low",
        _body(GOOD, {"sleep hours": -0.5}),
        422,
        ["body", "data", 1, "sleep hours"],
        ["record 1", "out of range [0, 24]"],
        "out_of_range",
    ),
    (
        "resource-low",
        _body({"Resource_Allocation": 0.5}),
        422,
        ["body", "data", 0, "Resource_Allocation"],
        ["out of range [1, 10]"],
        "out_of_range",
    ),
    (
        "resource-high",
        _body({"Resource_Allocation": 11}),
        422,
        ["body", "data", 0, "Resource_Allocation"],
        ["number 11", "out of range [1, 10]"],
        "out_of_range",
    ),
    (
        "team-size-high",
        _body({"Team Size": 1001}),
        422,
        ["body", "data", 0, "Team Size"],
        ["out of range [1, 1000]"],
        "out_of_range",
    ),
    (
        "team-size-low",
        _body({"Team Size": 0}),
        422,
        ["body", "data", 0, "Team Size"],
        ["out of range [1, 1000]"],
        "out_of_range",
    ),
    (
        "hours-high",
        _body({"Work Hours per Week": 121}),
        422,
        ["body", "data", 0, "Work Hours per Week"],
        ["out of range [0, 120]"],
        "out_of_range",
    ),
    (
        "designation-low",
        _body({"Designation": -1}),
        422,
        ["body", "data", 0, "Designation"],
        ["out of range [0, 5]"],
        "out_of_range",
    ),
    (
        "wlb-low",
        _body({"work_life_balance_score": 0}),
        422,
        ["body", "data", 0, "work_life_balance_score"],
        ["out of range [1, 5]"],
        "out_of_range",
    ),
    # --- categories and Employee ID
    (
        "category-typo",
        _body({"Gender": "Mle"}),
        422,
        ["body", "data", 0, "Gender"],
        ["record 0", "'Mle'", "'Male', 'Female'"],
        "enum",
    ),
    (
        "category-other",
        _body({"company_type": "Startup"}),
        422,
        ["body", "data", 0, "company_type"],
        ["'Service', 'Product'"],
        "enum",
    ),
    (
        "category-number",
        _body({"WFH Setup Available": 1}),
        422,
        ["body", "data", 0, "WFH Setup Available"],
        ["expected a string", "'Yes', 'No'", "number 1"],
        "string_type",
    ),
    (
        "category-bool",
        _body({"WFH Setup Available": True}),
        422,
        ["body", "data", 0, "WFH Setup Available"],
        ["expected a string", "boolean true"],
        "string_type",
    ),
    (
        "employee-id-number",
        _body({EMPLOYEE_ID: 17, "Team Size": 3}),
        422,
        ["body", "data", 0, EMPLOYEE_ID],
        ["expected a string", "number 17"],
        "string_type",
    ),
    (
        "employee-id-too-long",
        _body({EMPLOYEE_ID: "x" * 129, "Team Size": 3}),
        422,
        ["body", "data", 0, EMPLOYEE_ID],
        ["at most 128"],
        "string_too_long",
    ),
]


@pytest.mark.parametrize(
    ("raw", "status", "loc", "fragments", "type_"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_BODIES],
)
def test_bad_body_is_refused_precisely(
    raw: bytes, status: int, loc: list[Any], fragments: list[str], type_: str
) -> None:
    error = _refusal(raw)
    assert error.status == status
    first = error.errors[0]
    assert set(first) == {"loc", "msg", "type"}
    assert first["loc"] == loc
    assert first["type"] == type_
    for fragment in fragments:
        assert fragment in first["msg"], (fragment, first["msg"])
    assert str(error) == first["msg"]


def test_unknown_key_without_close_match_has_no_hint() -> None:
    msg = _refusal(_body({"Sleep Hours": 7, "zzz": 1})).errors[0]["msg"]
    assert "did you mean" not in msg


def test_every_problem_of_a_record_is_reported() -> None:
    record = {"Sleep Hours": 30, "gender": "x", "Team Size": "3", "Bogus": 1}
    error = _refusal(_body(GOOD, record, GOOD))
    assert [e["loc"] for e in error.errors] == [
        ["body", "data", 1, "Sleep Hours"],
        ["body", "data", 1, "gender"],
        ["body", "data", 1, "Team Size"],
        ["body", "data", 1, "Bogus"],
    ]


def test_first_error_of_each_record_is_reported() -> None:
    bad = [GOOD, {"Sleep Hours": 99}, GOOD, {"Gender": 1}, {"Team Size": True}]
    error = _refusal(_body(*bad), max_records=10)
    assert [e["loc"][2] for e in error.errors] == [1, 3, 4]


def test_errors_stop_after_the_cap() -> None:
    error = _refusal(_body(*[{"Sleep Hours": -1}] * 10_000), max_records=10_000)
    assert error.status == 422
    assert len(error.errors) == MAX_ERRORS + 1
    assert [e["loc"][2] for e in error.errors[:-1]] == list(range(MAX_ERRORS))
    assert error.errors[-1]["type"] == "too_many_errors"


def test_exactly_the_cap_of_errors_has_no_truncation_note() -> None:
    error = _refusal(_body(*[{"Sleep Hours": -1}] * MAX_ERRORS), max_records=100)
    assert len(error.errors) == MAX_ERRORS
    assert all(e["type"] == "out_of_range" for e in error.errors)


def test_huge_key_is_echoed_shortened() -> None:
    key = "k" * 10_000
    error = _refusal(_body({key: 1}))
    assert len(error.errors[0]["loc"][3]) < 300
    assert len(error.errors[0]["msg"]) < 600


# ------------------------------------------------------------------------------ good bodies


def test_seed_example() -> None:
    raw = b'{"data": [{"Designation": 1.5, "Resource_Allocation": 1.7, "Sleep_Hours": 7}]}'
    records = parse_body(raw, MAX)
    assert records == [{"Designation": 1.5, "Resource Allocation": 1.7, "Sleep Hours": 7}]
    # Numbers are kept as sent: an int stays an int.
    assert type(records[0]["Sleep Hours"]) is int
    assert type(records[0]["Designation"]) is float


SPELLINGS = {
    "canonical": lambda n: n,
    "lower": str.lower,
    "upper": str.upper,
    "snake": lambda n: n.replace(" ", "_").replace("-", "_"),
    "lower-snake": lambda n: n.lower().replace(" ", "_").replace("-", "_"),
    "kebab": lambda n: n.replace(" ", "-"),
    "spaces-for-hyphens": lambda n: n.replace("-", " "),
    "padded": lambda n: f"  {n}\t",
    "doubled-separators": lambda n: n.replace(" ", "__").replace("-", " - "),
    "alternating-case": lambda n: "".join(
        c.upper() if i % 2 else c.lower() for i, c in enumerate(n)
    ),
}


@pytest.mark.parametrize("spell", SPELLINGS.values(), ids=SPELLINGS.keys())
def test_full_record_in_every_spelling(spell: Any) -> None:
    record = {spell(k): v for k, v in FULL.items()} | {spell(EMPLOYEE_ID): "emp-1"}
    assert parse_body(_body(record), MAX) == [FULL | {EMPLOYEE_ID: "emp-1"}]


def test_mixed_spellings_in_one_record() -> None:
    names = list(FULL)
    spellers = list(SPELLINGS.values())
    record = {spellers[i % len(spellers)](n): FULL[n] for i, n in enumerate(names)}
    (out,) = parse_body(_body(record), MAX)
    assert out == FULL
    assert list(out) == names


def test_nulls_are_dropped() -> None:
    raw = b'{"data": [{"Sleep Hours": null, "Gender": null, "Team Size": 5, "Employee ID": null}]}'
    assert parse_body(raw, MAX) == [{"Team Size": 5}]


def test_employee_id_passes_through_untouched() -> None:
    ids = ["  Émile 007 ", "x" * 128, ""]
    records = [{EMPLOYEE_ID: i, "Sleep Hours": 6} for i in ids]
    out = parse_body(_body(*records), MAX)
    assert [r[EMPLOYEE_ID] for r in out] == ids


def test_employee_id_key_spelling_is_folded() -> None:
    (out,) = parse_body(_body({"employee_id": "e9", "team size": 4}), MAX)
    assert out == {EMPLOYEE_ID: "e9", "Team Size": 4}


@pytest.mark.parametrize(
    ("sent", "canonical"),
    [
        ({"Gender": "male"}, {"Gender": "Male"}),
        ({"gender": "FEMALE"}, {"Gender": "Female"}),
        ({"Company Type": "pRoDuCt"}, {"Company Type": "Product"}),
        ({"wfh_setup_available": "yes"}, {"WFH Setup Available": "Yes"}),
        ({"WFH Setup Available": "NO"}, {"WFH Setup Available": "No"}),
    ],
)
def test_categories_fold_case(sent: dict[str, str], canonical: dict[str, str]) -> None:
    assert parse_body(_body(sent), MAX) == [canonical]


@pytest.mark.parametrize(
    "feature", [f for f in FEATURES if f.kind == "number"], ids=lambda f: f.name
)
def test_range_bounds_are_inclusive(feature: Any) -> None:
    records = [{feature.name: feature.low}, {feature.name: feature.high}]
    assert parse_body(_body(*records), MAX) == records


def test_exactly_max_records_is_accepted_and_one_more_is_413() -> None:
    assert parse_body(_body(*[GOOD] * 100), 100) == [GOOD] * 100
    error = _refusal(_body(*[GOOD] * 101), max_records=100)
    assert error.status == 413
    assert error.errors == [
        {
            "loc": ["body", "data"],
            "msg": "too many records: 101 sent, at most 100 per request",
            "type": "too_many_records",
        }
    ]


def test_validate_records_takes_the_decoded_list() -> None:
    assert validate_records([{"sleep-hours": 8}], MAX) == [{"Sleep Hours": 8}]


@pytest.mark.parametrize(
    ("value", "type_", "fragment"),
    [
        (math.nan, "finite_number", "nan"),
        (math.inf, "finite_number", "inf"),
        (-math.inf, "finite_number", "-inf"),
        (10**5000, "out_of_range", "huge integer"),
        (-(10**30), "out_of_range", "huge integer"),
        ([[[[[]]]]], "number_type", "array"),
    ],
    ids=["nan", "inf", "-inf", "10**5000", "-10**30", "nested-list"],
)
def test_validate_records_refuses_non_finite_and_huge_from_other_decoders(
    value: object, type_: str, fragment: str
) -> None:
    with pytest.raises(BodyError) as info:
        validate_records([{"Sleep Hours": value}], MAX)
    (error,) = info.value.errors
    assert error["loc"] == ["body", "data", 0, "Sleep Hours"]
    assert error["type"] == type_
    assert fragment in error["msg"]


def test_deeply_nested_value_from_another_decoder_is_described_without_recursion() -> None:
    value: list[Any] = []
    for _ in range(100_000):
        value = [value]
    with pytest.raises(BodyError) as info:
        validate_records([{"Team Size": value}], MAX)
    assert info.value.errors[0]["type"] == "number_type"


# ------------------------------------------------------------------------- internal contracts


def test_key_cache_is_bounded_and_never_holds_unknown_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    private = Validator(seed_schema())  # so that filling its cache leaks into no other test
    for n in range(3 * MAX_LEARNT_KEYS):
        # Distinct spellings, each within MAX_KEY_LEN (a longer key is never folded).
        spelling = "sleep" + " " * (n % 60 + 1) + "_" * (n // 60 + 1) + "hours"
        records = [{spelling: 1}, {"Team Size": 1}]
        private.parse_body(_body(*records), MAX)
        with pytest.raises(BodyError):
            private.parse_body(_body({f"unknown-{n}": 1}), MAX)
    assert len(private.key_cache) <= private.cache_limit
    assert not any(k.startswith("unknown-") for k in private.key_cache)


_VALUE_POOL: list[object] = [
    None,
    True,
    False,
    0,
    1,
    3,
    7.5,
    24,
    25,
    -1,
    1000,
    1001,
    1e300,
    math.nan,
    math.inf,
    "Male",
    "male",
    "FEMALE",
    "Product",
    "service",
    "yes",
    "No",
    "maybe",
    "7",
    "",
    "x" * 200,
    [],
    [1],
    {},
    {"a": 1},
]
_KEY_POOL: list[str] = [
    *FEATURE_NAMES,
    EMPLOYEE_ID,
    "sleep_hours",
    "SLEEP HOURS",
    "team-size",
    "gender",
    "employee_id",
    "Sleep Hourz",
    "bogus",
    "company  type",
]


def test_fast_path_agrees_with_error_path_on_random_records() -> None:
    rng = random.Random(1234)
    for _ in range(20_000):
        keys = rng.sample(_KEY_POOL, rng.randint(0, 5))
        record = {k: rng.choice(_VALUE_POOL) for k in keys}
        expected, errors = SEED.record_errors(0, record)
        assert SEED.fast_record(record) == expected, (record, errors)
        assert (expected is None) == bool(errors)


def test_the_as_sent_path_agrees_with_the_copying_path_on_random_records() -> None:
    import random

    from streamfn.data.synth import RecordSampler, load_profile

    rng = random.Random(5)
    odd_values = [None, True, float("nan"), float("inf"), -1, 10**6, "", "x", [], {}, 2.5, 3]
    records = RecordSampler(load_profile(), seed=5).records(3000)
    for record in records:
        for _ in range(rng.randrange(3)):  # zero to two changes of any kind
            key = rng.choice(list(record))
            change = rng.randrange(4)
            if change == 0:
                record[key.lower().replace(" ", "_")] = record.pop(key)
            elif change == 1 and isinstance(record[key], str):
                record[key] = record[key].lower()
            elif change == 2:
                record[key] = rng.choice(odd_values)
            else:
                record["Unknown Field"] = 1
        copied = SEED.fast_record(dict(record))
        assert SEED.as_sent(record) == copied, record


# ------------------------------------------------------------- hostile bodies cost nothing


def _count_suggestions(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    import difflib

    calls: list[str] = []
    real = difflib.get_close_matches

    def counting(word: str, *args: Any, **kwargs: Any) -> list[str]:
        calls.append(word)
        return real(word, *args, **kwargs)

    monkeypatch.setattr(difflib, "get_close_matches", counting)
    return calls


def test_record_with_far_more_keys_than_columns_is_refused_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = _count_suggestions(monkeypatch)
    record = {f"Sleep Hours {i:05d}": 1 for i in range(30_000)}
    error = _refusal(_body(record), max_records=10_000)
    assert [e["type"] for e in error.errors] == ["too_many_fields"]
    assert "30000 fields" in error.errors[0]["msg"]
    assert calls == []


def test_suggestions_only_for_reported_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_suggestions(monkeypatch)
    record = {f"Sleep Hourz{i}": 1 for i in range(30)}  # within columns + MAX_ERRORS keys
    error = _refusal(_body(record))
    assert len(error.errors) == MAX_ERRORS + 1
    assert error.errors[-1]["type"] == "too_many_errors"
    assert len(calls) <= MAX_ERRORS + 1


def test_key_over_the_length_cap_is_unknown_and_not_matched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = _count_suggestions(monkeypatch)
    key = "Sleep Hours" + " " * 200  # folds to a column, but no column is spelt so long
    error = _refusal(_body({key: 7}))
    assert error.errors[0]["type"] == "extra_forbidden"
    assert "did you mean" not in error.errors[0]["msg"]
    assert calls == []


@pytest.mark.parametrize(
    ("items", "count"),
    [(b"[]", 200_000), (b"0", 200_000), (b'{"a":1}', 200_000),
     (b"[" * 500 + b"]" * 500, 400),
     # Few commas, but each opened array costs orjson about three commas' time.
     (b"[" * 1000 + b"]" * 1000, 100)],
    ids=["empty-arrays", "zeros", "one-key-objects", "nested-arrays", "deep-arrays"],
)  # fmt: skip
def test_body_of_more_values_than_records_can_hold_is_refused_before_decoding(
    monkeypatch: pytest.MonkeyPatch, items: bytes, count: int
) -> None:
    import streamfn.ingest.validation as validation

    def no_decoding(raw: bytes) -> object:
        raise AssertionError("decoded")

    monkeypatch.setattr(validation, "decode_body", no_decoding)
    raw = b'{"data":[' + b",".join([items] * count) + b"]}"
    error = _refusal(raw, max_records=10_000)
    assert error.status == 413
    assert error.errors[0]["type"] == "too_many_values"


def test_valid_body_of_max_records_passes_the_prescan() -> None:
    record = {**FULL, EMPLOYEE_ID: "Smith, J. [team {3}]"}  # brackets and a comma in a string
    assert len(parse_body(_body(*[record] * 10_000), 10_000)) == 10_000
