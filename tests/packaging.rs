//! One source of truth for everything packaged: the chart's copies of the CRD, the alert rules and
//! the dashboard equal their originals (`make sync` refreshes them), the PrometheusRule carries
//! exactly the rules of config/monitoring/alerts.yaml, alerts and dashboard query only series molt
//! exports, and the chart and image tag follow molt's version.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

/// Every series `molt run` exports on /metrics (src/metrics.rs). A dashboard panel or an alert on
/// any other name never shows data or never fires: a broken dashboard, a silent alert.
const EXPORTED_SERIES: &[&str] = &[
    "molt_plan_phase",
    "molt_plan_nodes_updated",
    "molt_plan_nodes",
    "molt_plan_current_batch",
    "molt_plan_blockers",
    "molt_plan_next_window_timestamp_seconds",
    "molt_evictions_total",
    "molt_health_gate_verdicts_total",
    "molt_reconcile_errors_total",
    "molt_reconcile_duration_seconds_bucket",
    "molt_reconcile_duration_seconds_sum",
    "molt_reconcile_duration_seconds_count",
    "molt_leader",
];

/// The values of molt_plan_phase's `phase` label.
const PHASES: &[&str] = &[
    "Pending",
    "Progressing",
    "Paused",
    "Succeeded",
    "Halted",
    "RollingBack",
    "RolledBack",
    "Failed",
];

/// Sections of docs/runbook.md the alerts link to.
const RUNBOOK_ANCHORS: &[&str] = &[
    "a-drain-is-stuck",
    "a-plan-halted",
    "a-rollout-stalled",
    "a-rollback-did-not-finish",
    "reconcile-errors",
    "the-leader-changed",
];

fn read(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml(path: &str) -> Value {
    serde_yaml_ng::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn assert_copy(original: &str, copy: &str) {
    assert!(
        read(original) == read(copy),
        "{copy} differs from {original}: run `make sync`"
    );
}

#[test]
fn the_chart_ships_the_crd_of_crds() {
    assert_copy(
        "crds/nodeupdateplans.molt.dev.yaml",
        "charts/molt/files/nodeupdateplans.molt.dev.yaml",
    );
}

#[test]
fn the_chart_ships_the_alerts_and_dashboard_of_config_monitoring() {
    assert_copy(
        "config/monitoring/alerts.yaml",
        "charts/molt/files/alerts.yaml",
    );
    assert_copy(
        "config/monitoring/dashboard.json",
        "charts/molt/files/dashboard.json",
    );
}

#[test]
fn the_prometheus_rule_has_the_groups_of_alerts_yaml() {
    let rule = yaml("config/prometheus/prometheus_rule.yaml");
    assert_eq!(rule["kind"], "PrometheusRule");
    assert_eq!(
        rule["spec"]["groups"],
        yaml("config/monitoring/alerts.yaml")["groups"],
        "config/prometheus/prometheus_rule.yaml differs from config/monitoring/alerts.yaml: run \
         `make sync`"
    );
}

/// Every `molt_…` name in `text` (a metric name starts after a non-name character).
fn series_names(text: &str) -> BTreeSet<String> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("molt_") {
        if text[..i].chars().next_back().is_some_and(is_name) {
            continue;
        }
        let name: String = text[i..].chars().take_while(|&c| is_name(c)).collect();
        out.insert(name);
    }
    out
}

/// The values `phase` is matched against (`phase="X"`, `phase=~"X|Y"`).
fn phase_values(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for op in ["phase=\"", "phase=~\"", "phase=\\\"", "phase=~\\\""] {
        for (i, _) in text.match_indices(op) {
            let rest = &text[i + op.len()..];
            let value: String = rest
                .chars()
                .take_while(|&c| c != '"' && c != '\\')
                .collect();
            out.extend(value.split('|').map(str::to_string));
        }
    }
    out
}

#[test]
fn alerts_and_dashboard_use_only_exported_series() {
    for path in [
        "config/monitoring/alerts.yaml",
        "config/monitoring/dashboard.json",
    ] {
        let text = read(path);
        let names = series_names(&text);
        assert!(!names.is_empty(), "{path} queries no molt series");
        for name in &names {
            assert!(
                EXPORTED_SERIES.contains(&name.as_str()),
                "{path} uses {name}, which molt does not export"
            );
        }
        for phase in phase_values(&text) {
            assert!(
                PHASES.contains(&phase.as_str()),
                "{path} matches phase {phase:?}, which molt_plan_phase never has"
            );
        }
    }
}

#[test]
fn every_alert_says_what_happened_and_links_the_runbook() {
    let runbook = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/runbook.md")
        .is_file()
        .then(|| read("docs/runbook.md"));
    let alerts = yaml("config/monitoring/alerts.yaml");
    let mut names = BTreeSet::new();
    for group in alerts["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let name = rule["alert"].as_str().unwrap();
            assert!(names.insert(name.to_string()), "alert {name} twice");
            assert!(rule["expr"].is_string(), "{name}: no expr");
            assert!(
                rule["labels"]["severity"].is_string(),
                "{name}: no severity"
            );
            for key in ["summary", "description", "runbook_url"] {
                assert!(rule["annotations"][key].is_string(), "{name}: no {key}");
            }
            let url = rule["annotations"]["runbook_url"].as_str().unwrap();
            let (_, anchor) = url
                .split_once("docs/runbook.md#")
                .unwrap_or_else(|| panic!("{name}: runbook_url {url} is not docs/runbook.md#…"));
            assert!(
                RUNBOOK_ANCHORS.contains(&anchor),
                "{name}: unknown anchor {anchor}"
            );
            if let Some(runbook) = &runbook {
                let has_section = runbook
                    .lines()
                    .filter(|l| l.starts_with('#'))
                    .any(|l| github_anchor(l.trim_start_matches('#')) == anchor);
                assert!(
                    has_section,
                    "{name}: docs/runbook.md has no section #{anchor}"
                );
            }
        }
    }
    for required in [
        "MoltDrainStuck",
        "MoltPlanHalted",
        "MoltRolloutStalled",
        "MoltRollbackStuck",
        "MoltReconcileErrors",
        "MoltNoLeader",
    ] {
        assert!(names.contains(required), "alert {required} is missing");
    }
}

/// The anchor GitHub gives a heading: lower case, spaces to dashes, punctuation dropped.
fn github_anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

#[test]
fn the_dashboard_is_parameterised_by_datasource_and_plan() {
    let dashboard: Value = serde_json::from_str(&read("config/monitoring/dashboard.json")).unwrap();
    let variables: BTreeSet<&str> = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert!(variables.contains("datasource") && variables.contains("plan"));
    let mut ids = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        let title = panel["title"].as_str().unwrap();
        assert!(
            ids.insert(panel["id"].as_u64().unwrap()),
            "{title}: id reused"
        );
        // A fixed datasource uid would break the dashboard on every other Grafana.
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
        assert!(!panel["targets"].as_array().unwrap().is_empty(), "{title}");
    }
}

#[test]
fn the_chart_and_the_image_follow_molts_version() {
    let chart = yaml("charts/molt/Chart.yaml");
    assert_eq!(
        chart["appVersion"],
        env!("CARGO_PKG_VERSION"),
        "Chart.yaml appVersion"
    );
    let manager = yaml("config/manager/kustomization.yaml");
    let tags: Vec<&Value> = manager["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["newTag"])
        .collect();
    assert_eq!(
        tags,
        [env!("CARGO_PKG_VERSION")],
        "config/manager image tag"
    );
}
