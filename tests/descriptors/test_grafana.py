"""The monitoring profile's Prometheus and Grafana files, checked without running either: every
query parses as PromQL and names metrics streamfn exports; the dashboard's data source is the one
provisioned; Prometheus scrapes the compose services that serve metrics."""

from __future__ import annotations

import json
from pathlib import Path

import promql_parser
import yaml
from prometheus_client import REGISTRY

import streamfn.core.metrics  # noqa: F401  (registers every metric streamfn exports)

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "streamfn.json"
DATASOURCES = ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
PANEL_TYPES = {"timeseries", "stat", "bargauge", "gauge", "table", "heatmap", "barchart"}


def exported() -> set[str]:
    """Every sample name streamfn's metrics can carry (counters' _total, histograms' _bucket…)."""
    names = set()
    for family in REGISTRY.collect():
        if family.name.startswith("streamfn_"):
            suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
            names |= {family.name + s for s in suffixes.get(family.type, [""])}
    return names


def metric_names(expression: str) -> set[str]:
    """The metric names a PromQL expression selects (it must parse)."""
    found: set[str] = set()
    nodes: list[object] = [promql_parser.parse(expression)]
    while nodes:
        node = nodes.pop()
        if isinstance(node, promql_parser.VectorSelector):
            found.add(node.name)
        for attribute in ("expr", "vector_selector", "lhs", "rhs", "param", "args"):
            child = getattr(node, attribute, None)
            nodes.extend(child if isinstance(child, list) else [child] if child else [])
    return found


def test_every_panel_queries_metrics_streamfn_exports() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    uid = yaml.safe_load(DATASOURCES.read_text())["datasources"][0]["uid"]
    assert dashboard["uid"]
    assert dashboard["panels"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    known = exported()
    for panel in dashboard["panels"]:
        assert panel["type"] in PANEL_TYPES, panel["title"]
        assert panel["datasource"]["uid"] == uid, panel["title"]
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid
            unknown = metric_names(target["expr"]) - known
            assert not unknown, f"{panel['title']}: {unknown} is not exported"
    targets = [t for p in dashboard["panels"] for t in p["targets"]]
    queried = {n for t in targets for n in metric_names(t["expr"])}
    drift = {"streamfn_feature_psi", "streamfn_prediction_psi", "streamfn_live_macro_f1",
             "streamfn_flagged_windows_total"}  # fmt: skip
    assert drift <= queried


def test_prometheus_scrapes_the_services_that_serve_metrics() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    targets = {t for job in config["scrape_configs"] for c in job["static_configs"]
               for t in c["targets"]}  # fmt: skip
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert targets == {"ingest:9100", "lambda-poller:9102", "poller:9101"}
    for target in targets:
        name, port = target.split(":")
        command = " ".join(str(c) for c in compose[name]["command"])
        assert port in command, f"{name} does not serve metrics on {port}"
    for name in ("prometheus", "grafana"):
        assert compose[name]["profiles"] == ["monitoring"], name
