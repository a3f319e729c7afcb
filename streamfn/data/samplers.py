"""Where the producer's records come from, per model.

- A seed model (MODELS maps it to its seed name) gets the Gaussian copula fitted to the burn-out
  dataset (`streamfn.data.synth`), as it always has.
- Any other model gets records drawn from its version's reference profile (each input on its
  own: a null as often as the profile's null share, a number uniform within a quantile bin
  chosen by its share, a category by its share), read from the registry.
- `--data FILE.csv` resamples that file's rows instead, for any model.
Every record carries an Employee ID no other record of the run has. Only the standard library is
used, so the producer function stays a small package.
"""

from __future__ import annotations

import bisect
import csv
import itertools
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from streamfn.core.settings import Settings
from streamfn.data.relation import Relation
from streamfn.data.synth import EmployeeIds, RecordSampler, load_profile
from streamfn.models import schemas
from streamfn.models.registry import Registry, open_registry
from streamfn.models.schemas import Column, ModelSchema, seed_schema
from streamfn.models.seed import EMPLOYEE_ID, is_seed_model, key_form


class Sampler(Protocol):
    """Draws records for one model."""

    def records(self, count: int) -> list[dict[str, Any]]:
        """`count` records."""
        ...


Labelled = tuple[list[dict[str, Any]], list[float | None]]  # records, and each one's Burn Rate


# What the labels of drifted records do (`streamfn produce --drift-labels`).
DRAWN, FOLLOW = "drawn", "follow"
LABEL_MODES = (DRAWN, FOLLOW)


class SamplerError(ValueError):
    """A model the producer cannot draw records for; the message says what to do."""


class ProfileSampler:
    """Records drawn from a reference profile, each input on its own."""

    def __init__(
        self, profile: Mapping[str, Any], schema: ModelSchema, ids: EmployeeIds, rng: random.Random
    ) -> None:
        self.rng = rng
        self.ids = ids
        self.draws = [
            (c, profile["features"][c.name])
            for c in schema.columns
            if c.name in profile["features"]
        ]
        self.cumulative = {c.name: list(itertools.accumulate(p["shares"])) for c, p in self.draws}

    def _value(self, column: Column, spread: Mapping[str, Any]) -> Any:
        shares = self.cumulative[column.name]
        if not shares:
            return None
        index = min(bisect.bisect_left(shares, self.rng.random() * shares[-1]), len(shares) - 1)
        if spread["kind"] == "category":
            value = spread["categories"][index]
            return value == "True" if column.kind == "boolean" else value
        edges = spread["edges"]
        low = edges[index]
        last = index + 1 == len(edges)
        high = spread["max"] if last else edges[index + 1]
        if column.kind == "integer" or spread.get("integer"):
            # Whole values of the bin: [low, next start), the last bin up to the maximum.
            top = int(high) if last else max(int(low), int(high) - 1)
            value: float = self.rng.randint(int(low), top)
            value = value if column.kind == "integer" else float(value)
        else:
            value = self.rng.uniform(low, high)
        return min(max(value, column.low), column.high)

    def record(self) -> dict[str, Any]:
        """One record."""
        record: dict[str, Any] = {EMPLOYEE_ID: self.ids.next()}
        for column, spread in self.draws:
            if not column.required and self.rng.random() < spread.get("null_share", 0.0):
                continue  # left out: the model's pipeline imputes it
            value = self._value(column, spread)
            if value is not None:
                record[column.name] = value
        return record

    def records(self, count: int) -> list[dict[str, Any]]:
        """`count` records."""
        return [self.record() for _ in range(count)]


def _typed(column: Column, text: str) -> Any:
    """A CSV cell as the column's kind (None for an empty cell)."""
    if text == "":
        return None
    if column.kind == "number":
        number = float(text)
        return number if math.isfinite(number) else None
    if column.kind == "integer":
        return int(float(text))
    if column.kind == "boolean":
        return text.strip().lower() in ("true", "1", "yes")
    return text


class RowSampler:
    """Rows of a CSV file, drawn with replacement; columns matched to the schema by name."""

    def __init__(
        self, path: Path, schema: ModelSchema, ids: EmployeeIds, rng: random.Random
    ) -> None:
        self.rng = rng
        self.ids = ids
        by_key = {key_form(c.name): c for c in schema.columns}
        with path.open(newline="", encoding="utf-8") as file:
            reader = csv.DictReader(file)
            matched = {
                h: by_key[key_form(h)] for h in reader.fieldnames or [] if key_form(h) in by_key
            }
            if not matched:
                raise SamplerError(f"{path} has none of the columns of {schema.registered_name}")
            self.rows = [
                {
                    c.name: v
                    for h, c in matched.items()
                    if (v := _typed(c, row[h] or "")) is not None
                }
                for row in reader
            ]
        self.rows = [row for row in self.rows if row]
        if not self.rows:
            raise SamplerError(f"{path} has no row with a value for {schema.registered_name}")

    def records(self, count: int) -> list[dict[str, Any]]:
        """`count` rows, each with a fresh Employee ID."""
        return [{EMPLOYEE_ID: self.ids.next(), **self.rng.choice(self.rows)} for _ in range(count)]


def for_models(
    settings: Settings,
    models: Sequence[str],
    seed: int | None,
    data: Path | None = None,
    registry: Registry | None = None,
    drift: str = "",
    labels: str = DRAWN,
    concept: str = "",
) -> dict[str, Sampler]:
    """A sampler for each model (drifted as `drift`, `labels` and `concept` say); SamplerError
    when one cannot be had."""
    rng = random.Random(seed)
    ids = EmployeeIds(rng)
    copula: CopulaSampler | None = None
    samplers: dict[str, Sampler] = {}
    for model in models:
        registered = settings.models[model]
        if data is None and is_seed_model(model, registered):
            # One copula for every seed model: one sequence of records, as the seed's producer.
            copula = copula or CopulaSampler(RecordSampler(load_profile(), seed))
            samplers[model] = drifted(copula, drift, seed_schema(model, registered), labels,
                                      concept)  # fmt: skip
            continue
        registry = registry or open_registry(settings.MLFLOW_TRACKING_URI)
        version = registry.alias_version(registered, settings.MODEL_ALIAS).version
        schema = registry.schema(model, registered, version)
        if data is not None:
            samplers[model] = drifted(RowSampler(data, schema, ids, rng), drift, schema, labels,
                                      concept)  # fmt: skip
            continue
        profile = registry.json_file(registered, version, schemas.REFERENCE_FILE)
        if profile is None:
            raise SamplerError(
                f"{registered} v{version} has no {schemas.REFERENCE_FILE}: run `streamfn profile "
                f"--model {model} --data FILE.csv`, or give the producer --data FILE.csv"
            )
        samplers[model] = drifted(ProfileSampler(profile, schema, ids, rng), drift, schema,
                                  labels, concept)  # fmt: skip
    return samplers


class CopulaSampler:
    """The seed's copula, as a sampler that also gives each record's Burn Rate (its label)."""

    def __init__(self, sampler: RecordSampler) -> None:
        self.sampler = sampler

    def records(self, count: int) -> list[dict[str, Any]]:
        """`count` records."""
        return self.sampler.records(count)

    def labelled(self, count: int) -> Labelled:
        """`count` records and their Burn Rates."""
        pairs = [self.sampler.labelled() for _ in range(count)]
        return [r for r, _ in pairs], [rate for _, rate in pairs]


@dataclass(frozen=True)
class Shift:
    """One input's drift: add `amount` (`+x`) or multiply by it (`*x`), clipped to its range."""

    column: Column
    op: str
    amount: float

    def apply(self, value: float) -> float:
        """The drifted value."""
        moved = value + self.amount if self.op == "+" else value * self.amount
        if self.column.kind == "integer":
            moved = round(moved)
        return min(max(moved, self.column.low), self.column.high)


def parse_drift(text: str, schema: ModelSchema, option: str = "--drift") -> list[Shift]:
    """`"Mental Fatigue Score=+2.5,Sleep Hours=*0.8"` for a schema's numeric inputs."""
    by_key = {key_form(c.name): c for c in schema.columns}
    shifts = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, change = part.partition("=")
        column = by_key.get(key_form(name))
        if column is None or column.kind not in ("number", "integer"):
            numeric = ", ".join(c.name for c in schema.columns if c.kind in ("number", "integer"))
            raise SamplerError(f"{option} {name.strip()!r}: not a numeric input; one of {numeric}")
        change = change.strip()
        try:
            amount = float(change[1:])
        except ValueError:
            amount = math.nan
        if change[:1] not in ("+", "*") or not math.isfinite(amount):
            raise SamplerError(f"{option} {part!r}: give +x (shift) or *x (scale)")
        shifts.append(Shift(column, change[0], amount))
    return shifts


class Drifted:
    """A sampler whose records have some inputs shifted or scaled (`drift`), and whose labels
    stay as drawn for the unmoved record (a change of P(label | inputs), which no estimate made
    from the inputs can see) or follow the moved inputs by the dataset's own relation
    (`follow`: the same P(label | inputs), moved inputs). With `concept`, the labels are those of
    records moved so while the inputs stay as drawn (a concept shift the inputs do not show)."""

    def __init__(
        self, inner: Sampler, shifts: Sequence[Shift], labels: str = DRAWN,
        concept: Sequence[Shift] = (), relation: Relation | None = None,
    ) -> None:  # fmt: skip
        self.inner = inner
        self.shifts = shifts
        self.labels = labels
        self.concept = concept
        self.relation = relation

    def _move(
        self, records: list[dict[str, Any]], shifts: Sequence[Shift] | None = None
    ) -> list[dict[str, Any]]:
        for record in records:
            for shift in self.shifts if shifts is None else shifts:
                value = record.get(shift.column.name)
                if value is not None:
                    record[shift.column.name] = shift.apply(value)
        return records

    def records(self, count: int) -> list[dict[str, Any]]:
        """`count` drifted records."""
        return self._move(self.inner.records(count))

    def labelled(self, count: int) -> Labelled:
        """`count` drifted records and their labels (as the labels' mode says)."""
        records, truths = self.inner.labelled(count)  # type: ignore[attr-defined]
        follow = self.shifts if self.labels == FOLLOW else ()
        moving = [*follow, *self.concept]
        if moving and self.relation is not None:
            moved = self._move([dict(r) for r in records], moving)
            pairs = zip(truths, records, moved, strict=True)
            truths = [self.relation.follow(rate, before, after) for rate, before, after in pairs]
        return self._move(records), truths


def drifted(
    sampler: Sampler, drift: str, schema: ModelSchema, labels: str = DRAWN, concept: str = ""
) -> Sampler:
    """The sampler, drifted as `drift`, `labels` and `concept` say (unchanged when they say
    nothing)."""
    shifts, moved = parse_drift(drift, schema), parse_drift(concept, schema, "--concept")
    if not shifts and not moved:
        return sampler
    relation = None
    if (labels == FOLLOW and shifts) or moved:
        profile = getattr(getattr(sampler, "sampler", None), "profile", None)
        if profile is None:
            raise SamplerError("--drift-labels follow and --concept move labels along the seed "
                               "dataset's relation: the seed's models only")  # fmt: skip
        relation = Relation(profile)
    return Drifted(sampler, shifts, labels, moved, relation)
