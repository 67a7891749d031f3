//! Admission of `spec.maintenanceWindows`: the CEL rules of the CRD, evaluated with the same CEL
//! libraries Kubernetes uses, refuse malformed windows with messages a person can act on.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kube::CustomResourceExt;
use molt::api::NodeUpdatePlan;
use serde_json::{Value, json};

fn schema() -> Value {
    let crd = NodeUpdatePlan::crd();
    let v = &crd.spec.versions[0];
    serde_json::to_value(&v.schema.as_ref().unwrap().open_api_v3_schema).unwrap()
}

fn plan(windows: Value) -> Value {
    json!({
        "apiVersion": "molt.dev/v1alpha1",
        "kind": "NodeUpdatePlan",
        "metadata": {"name": "p"},
        "spec": {
            "nodeSelector": {"matchLabels": {"pool": "workers"}},
            "target": {"image": "ubuntu-2404-20261120"},
            "provider": {"kwok": {}},
            "maintenanceWindows": windows
        }
    })
}

fn rejections(windows: Value) -> Vec<String> {
    match kube::core::cel::Validator::new().validate(&schema(), &plan(windows), None) {
        Ok(()) => vec![],
        Err(errors) => errors.into_vec().into_iter().map(|e| e.message).collect(),
    }
}

#[track_caller]
fn assert_rejected(window: Value, expect: &str) {
    let got = rejections(json!([window]));
    assert!(
        got.iter().any(|m| m.contains(expect)),
        "expected a rejection containing {expect:?}, got {got:?} for {window}"
    );
}

#[test]
fn well_formed_windows_are_admitted() {
    let ok = json!([
        {"days": ["Sat", "Sun"], "start": "02:00", "end": "06:00", "timeZone": "Europe/Berlin"},
        {"days": ["Mon"], "start": "22:30", "end": "00:00", "timeZone": "America/Argentina/Buenos_Aires"},
        {"days": ["Wed"], "start": "23:00", "end": "01:00", "timeZone": "Etc/GMT+5"},
        {"days": ["Fri"], "start": "00:00", "end": "23:59"}
    ]);
    assert_eq!(rejections(ok), Vec::<String>::new());
}

#[test]
fn times_that_are_not_hh_mm_are_rejected() {
    for bad in ["24:00", "2:00", "02:60", "0200", "02:00:00", "noon"] {
        assert_rejected(
            json!({"days": ["Mon"], "start": bad, "end": "04:00"}),
            "start must be a time of day HH:MM on a 24-hour clock",
        );
        assert_rejected(
            json!({"days": ["Mon"], "start": "04:00", "end": bad}),
            "end must be a time of day HH:MM on a 24-hour clock",
        );
    }
}

#[test]
fn an_empty_window_is_rejected() {
    assert_rejected(
        json!({"days": ["Mon"], "start": "04:00", "end": "04:00"}),
        "a maintenance window's start and end must differ",
    );
}

#[test]
fn days_must_be_named_once_each() {
    assert_rejected(
        json!({"days": [], "start": "02:00", "end": "04:00"}),
        "a maintenance window must name at least one day",
    );
    assert_rejected(
        json!({"days": ["Mon", "Tue", "Mon"], "start": "02:00", "end": "04:00"}),
        "a maintenance window must not name a day twice",
    );
}

#[test]
fn a_zone_that_is_not_shaped_like_an_iana_name_is_rejected() {
    for bad in ["Europe Berlin", "/Europe", "Europe/", "UTC+1:00", ""] {
        assert_rejected(
            json!({"days": ["Mon"], "start": "02:00", "end": "04:00", "timeZone": bad}),
            "timeZone must be an IANA time zone name",
        );
    }
}

#[test]
fn kubectl_get_shows_when_the_next_window_opens() {
    let crd = NodeUpdatePlan::crd();
    let cols = crd.spec.versions[0]
        .additional_printer_columns
        .clone()
        .unwrap_or_default();
    let col = cols.iter().find(|c| c.name == "Next-Window").unwrap();
    assert_eq!(col.json_path, ".status.nextWindowAt");
    // A date column would print a time in the future as "<invalid>".
    assert_eq!(col.type_, "string");
}

#[test]
fn the_spec_reads_windows_with_utc_as_the_default_zone() {
    let p: NodeUpdatePlan = serde_json::from_value(plan(json!([
        {"days": ["Sat"], "start": "02:00", "end": "04:00"}
    ])))
    .unwrap();
    let w = &p.spec.maintenance_windows[0];
    assert_eq!(w.time_zone, "UTC");
    assert_eq!(w.days, [molt::api::Weekday::Sat]);
    let none: NodeUpdatePlan = serde_json::from_value(plan(json!([]))).unwrap();
    assert!(none.spec.maintenance_windows.is_empty());
}
