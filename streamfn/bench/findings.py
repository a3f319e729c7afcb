"""What one `streamfn bench` run measured, and how it was run: what the report and its
pictures are drawn from, and what each cost's row is judged on."""

from __future__ import annotations

from dataclasses import dataclass, field

from streamfn.bench import CurvePoint, Measurement
from streamfn.bench.compiled import Compiled


@dataclass
class Findings:
    """Everything one run measured, and how it was run."""

    command: str
    settings: dict[str, str]
    measurements: list[Measurement] = field(default_factory=list)
    poller_memory_mb: list[float] = field(default_factory=list)
    model_loads: dict[str, dict[tuple[str, str], int]] = field(default_factory=dict)
    curve: list[CurvePoint] = field(default_factory=list)
    monitoring: dict[str, float] = field(default_factory=dict)  # on/off -> records/s
    console: dict[str, float] = field(default_factory=dict)  # refresh_ms, ingest_cores, share
    # on/off -> records/s with a challenger in shadow or none; floor -> the challenger's own
    # in-process records/s (frame + predict + CSV)
    challenger: dict[str, float] = field(default_factory=dict)
    # canary/none -> records/s with a 25% canary or no challenger; served_share -> the share of
    # the rows the challenger served in the canary's run
    canary: dict[str, float] = field(default_factory=dict)
    # csv/parquet -> records/s with SINK_FORMAT so; <format>_bytes_per_row -> the objects' size
    sink: dict[str, float] = field(default_factory=dict)
    # on/off -> records/s with ESTIMATE_PERFORMANCE so (a calibrated LightGBM)
    estimation: dict[str, float] = field(default_factory=dict)
    # none / share 1 / share 0.1 -> records/s with OUTPUT_EXPLANATIONS=3 at that EXPLAIN_SHARE
    explanations: dict[str, float] = field(default_factory=dict)
    # per model: the runtime auto chose, its parity figures, one record's floor under each
    compiled: list[Compiled] = field(default_factory=list)
    smoke: bool = False  # --quick: figures that show the stages run, never compared

    def find(self, design: str, model: str, size: int) -> Measurement | None:
        """The measurement of one design, model and records per request, if any."""
        return next(
            (m for m in self.measurements
             if (m.design, m.model, m.records_per_request) == (design, model, size)),
            None,
        )  # fmt: skip
