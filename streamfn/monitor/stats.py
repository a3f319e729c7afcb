"""A window's statistics from its counts: PSI per input and for the predictions against the
reference profile, missing shares, live accuracy and macro F1, the accuracy and macro F1
estimated without labels (CBPE, from the expected confusion cells), attribution drift (the nDCG
of the inputs ranked by their live contributions against the reference's ranking), and the
flags.

PSI = sum over bins of (live - reference) * ln(live / reference), each share floored at
PSI_FLOOR so that an empty bin stays finite. A window with fewer than MONITOR_MIN_RECORDS records
is reported but never flagged: on small windows PSI's expected value alone is about bins/records.

Plain Python, not numpy: each statistic is a sum over about ten bins or classes, and this module
runs in the ingest's zip function, where numpy cannot go (Lambda's Python 3.11 is Amazon Linux 2,
glibc 2.26; the pinned numpy needs 2.27). The counting, over whole batches, is numpy's.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from streamfn.monitor.windowing import CANARY_FAILED, CANARY_ROWS, OTHER, shadow_prefix

PSI_FLOOR = 1e-4
# Expected confusion cells and attribution sums are counted in millionths (monitor.counts.SCALE:
# not imported, that module needs numpy).
ESTIMATE_SCALE = 1_000_000
WARN_PSI = 0.1
FLAG_ORDER = ("ok", "warn", "drift")
ATTRIBUTION_NDCG = 0.9  # ATTRIBUTION_NDCG's default
# Realised macro F1 this far below the estimate (on MONITOR_MIN_RECORDS labelled rows or more):
# the labels no longer follow the inputs as the model learnt (concept drift), which an estimate
# made from the model's confidence cannot see.
ESTIMATE_GAP = 0.05


def psi(live: Sequence[float], expected: Sequence[float]) -> float:
    """The population stability index of live counts against reference shares."""
    total = sum(live)
    if total == 0:
        return 0.0
    terms = []
    for count, share in zip(live, expected, strict=True):
        p, q = max(count / total, PSI_FLOOR), max(float(share), PSI_FLOOR)
        terms.append((p - q) * math.log(p / q))
    return math.fsum(terms)


def flag_of(value: float, drift_psi: float) -> str:
    """drift from DRIFT_PSI, warn from 0.1, else ok."""
    if value >= drift_psi:
        return "drift"
    return "warn" if value >= WARN_PSI else "ok"


def _bins(counts: Mapping[str, int], prefix: str, names: Sequence[str]) -> list[int]:
    return [int(counts.get(f"{prefix}{name}", 0)) for name in names]


def feature_report(
    name: str, counts: Mapping[str, int], spread: Mapping[str, Any], records: int, drift_psi: float
) -> dict[str, Any]:
    """One input's PSI, missing share (and the reference's), values out of range, flag."""
    labels = [str(i) for i in range(len(spread["shares"]))]
    expected = list(spread["shares"])
    if spread["kind"] == "category":
        labels.append(OTHER)
        expected.append(0.0)
    value = psi(_bins(counts, f"b:{name}:", labels), expected)
    missing = int(counts.get(f"m:{name}", 0))
    return {
        "psi": round(value, 4),
        "missing_share": round(missing / records, 4) if records else 0.0,
        "reference_missing_share": round(float(spread.get("null_share", 0.0)), 4),
        "out_of_range": int(counts.get(f"o:{name}", 0)),
        "flag": flag_of(value, drift_psi),
    }


def prediction_report(
    counts: Mapping[str, int], spread: Mapping[str, Any] | None, drift_psi: float
) -> dict[str, Any]:
    """The predictions' shares and their PSI against the reference's."""
    found = {k.removeprefix("p:"): int(v) for k, v in counts.items() if k.startswith("p:")}
    total = sum(found.values())
    shares = {k: round(v / total, 4) for k, v in sorted(found.items())} if total else {}
    if spread is None:
        return {"psi": None, "shares": shares, "flag": "ok"}
    if spread["kind"] == "class":
        labels = [*spread["classes"], *(k for k in found if k not in spread["classes"])]
        expected = [*spread["shares"], *([0.0] * (len(labels) - len(spread["classes"])))]
    else:
        labels, expected = [str(i) for i in range(len(spread["shares"]))], spread["shares"]
    value = psi([found.get(label, 0) for label in labels], expected)
    return {"psi": round(value, 4), "shares": shares, "flag": flag_of(value, drift_psi)}


def scores(counts: Mapping[str, int]) -> tuple[int, float | None, float | None]:
    """(labelled, accuracy, macro F1) from the confusion counts `l:<true>:<predicted>`."""
    pairs = {tuple(k[2:].split(":", 1)): int(v) for k, v in counts.items() if k.startswith("l:")}
    labelled, accuracy, f1 = _confusion_scores(pairs)  # type: ignore[arg-type]
    return int(labelled), accuracy, f1


def estimated_scores(counts: Mapping[str, int]) -> tuple[float, float | None, float | None]:
    """(rows, accuracy, macro F1) estimated from the expected confusion cells
    `e:<true>:<predicted>` (millionths of a row): what the labels would say if the calibrated
    probabilities hold."""
    pairs = {tuple(k[2:].split(":", 1)): int(v) / ESTIMATE_SCALE
             for k, v in counts.items() if k.startswith("e:")}  # fmt: skip
    return _confusion_scores(pairs)  # type: ignore[arg-type]


def _confusion_scores(
    pairs: Mapping[tuple[str, str], float],
) -> tuple[float, float | None, float | None]:
    """(rows, accuracy, macro F1) of a confusion matrix (true, predicted) -> rows."""
    labelled = math.fsum(pairs.values())
    if not labelled:
        return 0, None, None
    hits: Counter[str] = Counter()
    true_totals: Counter[str] = Counter()
    predicted_totals: Counter[str] = Counter()
    for (truth, predicted), n in pairs.items():
        true_totals[truth] += n
        predicted_totals[predicted] += n
        if truth == predicted:
            hits[truth] += n
    # F1 = 2TP / (2TP + FP + FN) per class, averaged over every class that is true or predicted
    # at least once (scikit-learn's f1_score, average="macro", over y_true and y_pred's labels).
    classes = {c for c in set(true_totals) | set(predicted_totals)
               if true_totals[c] + predicted_totals[c] > 0}  # fmt: skip
    f1 = [2 * hits[c] / (true_totals[c] + predicted_totals[c]) for c in classes]
    return labelled, math.fsum(hits.values()) / labelled, math.fsum(f1) / len(f1)


def ndcg(live: Mapping[str, float], reference: Mapping[str, float]) -> float:
    """How well the inputs ranked by live attribution keep the reference's order: the DCG of
    the live ranking, each input's relevance its reference attribution, over the DCG of the
    reference's own ranking (1: the same order; Clarify flags below 0.9)."""
    relevance = {name: max(float(v), 0.0) for name, v in reference.items()}
    ranked = sorted(relevance, key=lambda n: (-live.get(n, 0.0), n))
    ideal = sorted(relevance.values(), reverse=True)
    dcg = math.fsum(relevance[n] / math.log2(i + 2) for i, n in enumerate(ranked))
    best = math.fsum(v / math.log2(i + 2) for i, v in enumerate(ideal))
    return dcg / best if best else 1.0


def attribution_report(
    counts: Mapping[str, int], reference: Mapping[str, float] | None, threshold: float,
    min_rows: int,
) -> dict[str, Any] | None:  # fmt: skip
    """The window's explained rows: each input's share of the attribution, the nDCG against the
    reference's ranking, and the flag (drift below `threshold`, once `min_rows` are explained).
    None when no row was explained."""
    explained = int(counts.get("xn", 0))
    if not explained:
        return None
    means = {k[2:]: int(v) / ESTIMATE_SCALE / explained
             for k, v in counts.items() if k.startswith("x:")}  # fmt: skip
    total = math.fsum(means.values())
    shares = {n: round(v / total, 4) if total else 0.0 for n, v in sorted(means.items())}
    value = None if not reference else round(ndcg(means, reference), 4)
    flag = "ok"
    if value is not None and explained >= min_rows and value < threshold:
        flag = "drift"
    return {"explained": explained, "ndcg": value, "shares": shares, "flag": flag}


def challenger_versions(counts: Mapping[str, int]) -> list[str]:
    """The challenger versions a window's counts compare with its champion."""
    return sorted({k.split(":", 2)[1] for k in counts if k.startswith("s:")}, key=_as_number)


def _as_number(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (0, version)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def turned(counts: Mapping[str, int], served: str, shadow: str) -> Counter[str]:
    """A canary window's comparison (the challenger `served`, the champion `shadow` in shadow,
    under s:<champion>:) as the champion's window would count the challenger in shadow (under
    s:<challenger>:): the labelled cells l: and k: swap, as do the estimated e: and ke:, the
    confusion cells turn, and the challenger's predictions are the window's own."""
    source, target = shadow_prefix(shadow), shadow_prefix(served)
    swap = {"l:": "k:", "k:": "l:", "e:": "ke:", "ke:": "e:"}
    found: Counter[str] = Counter()
    for key, n in counts.items():
        if key.startswith("p:"):
            found[target + key] += int(n)
        if not key.startswith(source):
            continue
        rest = key[len(source) :]
        kind = rest.split(":", 1)[0] + ":"
        if rest in ("n", "a"):
            found[target + rest] += int(n)
        elif kind == "c:":
            ours, theirs = rest[2:].split(":", 1)
            found[f"{target}c:{theirs}:{ours}"] += int(n)
        elif kind in swap:
            found[target + swap[kind] + rest[len(kind) :]] += int(n)
    return found


def paired(
    windows: Iterable[tuple[str, Mapping[str, int]]], champion: str, challenger: str
) -> Counter[str]:
    """The challenger beside the champion on every row both scored, in both directions: the
    champion's windows (version, counts) with the challenger in shadow, and the challenger's
    canary windows with the champion in shadow (turned), summed under s:<challenger>:."""
    prefix = shadow_prefix(challenger)
    summed: Counter[str] = Counter()
    for version, counts in windows:
        if version == champion:
            summed.update({k: int(v) for k, v in counts.items() if k.startswith(prefix)})
        elif version == challenger:
            summed.update(turned(counts, challenger, champion))
    return summed


def champion_psi(confusion: Mapping[str, Mapping[str, int]]) -> float | None:
    """The PSI of the challenger's predicted classes against the champion's on the same rows
    (from the champion x challenger confusion cells); None without rows."""
    champion: Counter[str] = Counter()
    challenger: Counter[str] = Counter()
    for ours, row in confusion.items():
        for theirs, n in row.items():
            champion[ours] += n
            challenger[theirs] += n
    total = sum(champion.values())
    if not total:
        return None
    classes = sorted(set(champion) | set(challenger))
    expected = [champion[c] / total for c in classes]
    return round(psi([challenger[c] for c in classes], expected), 4)


def canary_report(counts: Mapping[str, int]) -> dict[str, Any] | None:
    """The rows a challenger version served as the canary, those of its share it could not
    serve (the champion served them) and its error rate; None when it served as no canary."""
    served, failed = int(counts.get(CANARY_ROWS, 0)), int(counts.get(CANARY_FAILED, 0))
    if not served and not failed:
        return None
    return {"served": served, "failed": failed, "error_rate": round(failed / (served + failed), 4)}


def challenger_report(
    counts: Mapping[str, int], version: str, profile: Mapping[str, Any] | None, drift_psi: float
) -> dict[str, Any]:
    """One challenger version against the champion on the same rows: agreement, the champion x
    challenger confusion counts, its prediction PSI, and both versions' scores on the labelled
    shadow rows."""
    prefix = f"s:{version}:"
    own = {k.removeprefix(prefix): int(v) for k, v in counts.items() if k.startswith(prefix)}
    compared, agreeing = own.get("n", 0), own.get("a", 0)
    confusion: dict[str, dict[str, int]] = {}
    for key, n in sorted(own.items()):
        if key.startswith("c:"):
            champion, challenger = key[2:].split(":", 1)
            confusion.setdefault(champion, {})[challenger] = n
    spread = None if profile is None else profile.get("prediction")
    prediction = prediction_report(own, spread, drift_psi)
    labelled, accuracy, macro_f1 = scores(own)  # the challenger's cells: l:<true>:<predicted>
    _, champion_accuracy, champion_f1 = scores(
        {"l:" + k[2:]: n for k, n in own.items() if k.startswith("k:")}
    )  # the champion's cells on the same rows: k:<true>:<predicted>
    # Estimated without labels, on the same shadow rows: the challenger's expected cells
    # (e:<true>:<predicted>) and the champion's (ke:), each from its own calibration.
    estimated_rows, _, estimated_f1 = estimated_scores(own)
    _, _, champion_estimated_f1 = estimated_scores(
        {"e:" + k[3:]: n for k, n in own.items() if k.startswith("ke:")}
    )
    return {
        "version": version,
        "compared": compared,
        "agreement": round(agreeing / compared, 4) if compared else None,
        "confusion": confusion,
        "prediction": prediction,
        "champion_psi": champion_psi(confusion),
        "labelled": labelled,
        "accuracy": _rounded(accuracy),
        "macro_f1": _rounded(macro_f1),
        "champion_accuracy": _rounded(champion_accuracy),
        "champion_macro_f1": _rounded(champion_f1),
        "estimated_rows": round(estimated_rows),
        "estimated_macro_f1": _rounded(estimated_f1),
        "champion_estimated_macro_f1": _rounded(champion_estimated_f1),
    }


def window_report(
    counts: Mapping[str, int],
    profile: Mapping[str, Any] | None,
    min_records: int,
    drift_psi: float,
    challengers: Mapping[str, Mapping[str, Any] | None] | None = None,
    attribution_ndcg: float = ATTRIBUTION_NDCG,
) -> dict[str, Any]:
    """The statistics of one window; flags only when it holds MONITOR_MIN_RECORDS records.
    `challengers` gives the reference profile of each challenger version the counts hold."""
    records = int(counts.get("records", 0))
    if profile is None:
        features: dict[str, Any] = {}
        prediction = prediction_report(counts, None, drift_psi)
    else:
        features = {
            name: feature_report(name, counts, spread, records, drift_psi)
            for name, spread in profile["features"].items()
        }
        prediction = prediction_report(counts, profile.get("prediction"), drift_psi)
    labelled, accuracy, macro_f1 = scores(counts)
    estimated_rows, estimated_accuracy, estimated_f1 = estimated_scores(counts)
    attribution = attribution_report(
        counts, (profile or {}).get("attribution"), attribution_ndcg, min_records
    )
    # A challenger's window of the rows it served as the canary: the champion is in shadow.
    canary = canary_report(counts)
    role = "champion" if canary else "challenger"
    shadowed = {v: (challengers or {}).get(v) for v in challenger_versions(counts)}
    report: dict[str, Any] = {
        "records": records,
        "features": features,
        "prediction": prediction,
        "labelled": labelled,
        "accuracy": _rounded(accuracy),
        "macro_f1": _rounded(macro_f1),
        "estimated_rows": round(estimated_rows),
        "estimated_accuracy": _rounded(estimated_accuracy),
        "estimated_macro_f1": _rounded(estimated_f1),
        "estimate_gap": None,
        "attribution": attribution,
        "canary": canary,
        "challengers": [
            {**challenger_report(counts, v, spread, drift_psi), "in_shadow": role}
            for v, spread in shadowed.items()
        ],
    }
    if macro_f1 is not None and estimated_f1 is not None and labelled >= min_records:
        gap = macro_f1 - estimated_f1
        report["estimate_gap"] = {"macro_f1": round(gap, 4),
                                  "flag": "drift" if gap <= -ESTIMATE_GAP else "ok"}  # fmt: skip
    if profile is None:
        report["flag"] = "no reference"
    elif records < min_records:
        report["flag"] = "too few records"
        for part in (*features.values(), prediction):
            part["flag"] = "ok"
    else:
        flags = [f["flag"] for f in features.values()] + [prediction["flag"]]
        flags += [attribution["flag"]] if attribution else []
        flags += [report["estimate_gap"]["flag"]] if report["estimate_gap"] else []
        report["flag"] = max(flags, key=FLAG_ORDER.index)
    return report
