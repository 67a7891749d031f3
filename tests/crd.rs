//! The CRD: generated from the Rust types, checked in under crds/, and rejecting bad input at
//! admission with messages a person understands. CEL rules are evaluated here with the same CEL
//! libraries Kubernetes uses; the end-to-end suite applies the same objects to a real API server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kube::CustomResourceExt;
use molt::api::NodeUpdatePlan;
use serde_json::{Value, json};

fn schema() -> Value {
    let crd = NodeUpdatePlan::crd();
    serde_json::to_value(
        &crd.spec.versions[0]
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema,
    )
    .unwrap()
}

fn valid() -> Value {
    json!({
        "apiVersion": "molt.dev/v1alpha1",
        "kind": "NodeUpdatePlan",
        "metadata": {"name": "p"},
        "spec": {
            "nodeSelector": {"matchLabels": {"pool": "workers"}},
            "target": {"image": "ubuntu-2404-20261120"},
            "provider": {"kwok": {}},
            "strategy": {"batchSize": 2, "canary": {"nodes": 1}, "blueGreen": true},
            "drain": {"timeout": "30m", "unmanagedPods": "Block", "onTimeout": "Halt"},
            "health": {"readyTimeout": "5m", "maxRestarts": 3, "maxUnhealthyPods": "10%", "nodeReadyTimeout": "10m", "soak": "5m"},
            "onFailure": "Rollback"
        }
    })
}

/// Messages of the CEL rules that reject `object` (on update from `old`, if given).
fn rejections(object: &Value, old: Option<&Value>) -> Vec<String> {
    match kube::core::cel::Validator::new().validate(&schema(), object, old) {
        Ok(()) => vec![],
        Err(errors) => errors.into_vec().into_iter().map(|e| e.message).collect(),
    }
}

fn with(path: &[&str], value: Value) -> Value {
    let mut v = valid();
    let mut cur = &mut v["spec"];
    for p in &path[..path.len() - 1] {
        cur = &mut cur[*p];
    }
    cur[path[path.len() - 1]] = value;
    v
}

fn assert_rejected(object: Value, expect: &str) {
    let got = rejections(&object, None);
    assert!(
        got.iter().any(|m| m.contains(expect)),
        "expected a rejection containing {expect:?}, got {got:?} for {object}"
    );
}

#[test]
fn checked_in_crd_matches_the_code() {
    let want = molt::crd::yaml().unwrap();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(molt::crd::CRD_PATH);
    let have = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        have == want,
        "crds/ is stale: run `make crds` and commit the result"
    );
}

#[test]
fn molt_crd_prints_the_checked_in_crd() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_molt"))
        .arg("crd")
        .output()
        .unwrap();
    assert!(out.status.success());
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(molt::crd::CRD_PATH);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        std::fs::read_to_string(path).unwrap()
    );
}

#[test]
fn resource_shape_matches_the_product() {
    let crd = NodeUpdatePlan::crd();
    assert_eq!(crd.spec.group, molt::api::keys::GROUP);
    assert_eq!(crd.spec.scope, "Cluster");
    assert_eq!(crd.spec.names.kind, "NodeUpdatePlan");
    assert_eq!(crd.spec.names.short_names, Some(vec!["nup".to_string()]));
    let v = &crd.spec.versions[0];
    assert_eq!(v.name, "v1alpha1");
    assert!(
        v.subresources
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .is_some(),
        "status subresource"
    );
    let cols: Vec<&str> = v
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    for want in ["Phase", "Updated", "Batch", "Health", "Age"] {
        assert!(
            cols.contains(&want),
            "printer column {want} missing from {cols:?}"
        );
    }
}

#[test]
fn every_spec_field_is_documented() {
    fn walk(path: &str, v: &Value, missing: &mut Vec<String>) {
        if let Some(props) = v.get("properties").and_then(Value::as_object) {
            for (k, p) in props {
                let here = format!("{path}.{k}");
                if p.get("description")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    missing.push(here.clone());
                }
                walk(&here, p, missing);
            }
        }
        if let Some(items) = v.get("items") {
            walk(path, items, missing);
        }
    }
    let mut missing = vec![];
    walk("spec", &schema()["properties"]["spec"], &mut missing);
    walk("status", &schema()["properties"]["status"], &mut missing);
    assert!(
        missing.is_empty(),
        "fields without a description (kubectl explain shows nothing): {missing:?}"
    );
}

#[test]
fn defaults_follow_the_product_page() {
    let s = schema();
    let spec = &s["properties"]["spec"]["properties"];
    assert_eq!(spec["onFailure"]["default"], "Rollback");
    assert_eq!(spec["paused"]["default"], false);
    let drain = &spec["drain"]["properties"];
    assert_eq!(drain["unmanagedPods"]["default"], "Block");
    assert_eq!(drain["onTimeout"]["default"], "Halt");
    assert_eq!(drain["deleteEmptyDirData"]["default"], true);
    let health = &spec["health"]["properties"];
    assert_eq!(health["maxRestarts"]["default"], 3);
    assert_eq!(health["maxUnhealthyPods"]["default"], 0);
    assert_eq!(spec["strategy"]["properties"]["batchSize"]["default"], 1);
    assert_eq!(spec["strategy"]["properties"]["blueGreen"]["default"], true);
    for (field, want) in [
        ("readyTimeout", 300),
        ("nodeReadyTimeout", 600),
        ("soak", 300),
    ] {
        let d: kube::core::Duration =
            serde_json::from_value(health[field]["default"].clone()).unwrap();
        assert_eq!(std::time::Duration::from(d).as_secs(), want, "{field}");
    }
    // Unknown enum values are refused by the schema itself.
    assert_eq!(drain["unmanagedPods"]["enum"], json!(["Block", "Evict"]));
    assert_eq!(drain["onTimeout"]["enum"], json!(["Halt", "Rollback"]));
    assert_eq!(spec["onFailure"]["enum"], json!(["Halt", "Rollback"]));
}

#[test]
fn a_valid_plan_is_admitted() {
    assert_eq!(rejections(&valid(), None), Vec::<String>::new());
    let minimal = json!({"spec": {"nodeSelector": {"matchExpressions": [{"key": "pool", "operator": "Exists"}]},
        "target": {"image": "v2"}, "provider": {"kwok": {}}}});
    assert_eq!(rejections(&minimal, None), Vec::<String>::new());
}

#[test]
fn the_samples_are_admitted_and_parse() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/config/samples");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        // The directory's kustomization lists the samples; it is not one.
        if path.file_name().is_some_and(|n| n == "kustomization.yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let plan: NodeUpdatePlan =
            serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        let value = serde_json::to_value(&plan).unwrap();
        assert_eq!(rejections(&value, None), Vec::<String>::new(), "{path:?}");
        molt::engine::settings::Settings::from_spec(&plan.spec).unwrap();
        seen += 1;
    }
    assert!(seen >= 3, "samples missing");
}

#[test]
fn an_empty_selector_is_rejected() {
    for sel in [
        json!({}),
        json!({"matchLabels": {}}),
        json!({"matchExpressions": []}),
    ] {
        assert_rejected(
            with(&["nodeSelector"], sel),
            "nodeSelector must not be empty",
        );
    }
}

#[test]
fn non_positive_and_malformed_sizes_are_rejected() {
    for bad in [
        json!(0),
        json!(-1),
        json!("0%"),
        json!("150%"),
        json!("2.5"),
        json!("quarter"),
        json!("-5%"),
    ] {
        assert_rejected(
            with(&["strategy", "batchSize"], bad),
            "batchSize must be a whole number of nodes >= 1",
        );
    }
    for good in [json!(1), json!("1%"), json!("25%"), json!("100%")] {
        assert_eq!(
            rejections(&with(&["strategy", "batchSize"], good.clone()), None),
            Vec::<String>::new(),
            "{good}"
        );
    }
    assert_rejected(
        with(&["strategy", "canary", "nodes"], json!(0)),
        "canary.nodes must be at least 1",
    );
    for bad in [json!(-1), json!("101%"), json!("ten")] {
        assert_rejected(
            with(&["health", "maxUnhealthyPods"], bad),
            "maxUnhealthyPods must be a whole number >= 0",
        );
    }
    assert_rejected(
        with(&["health", "maxRestarts"], json!(-1)),
        "health.maxRestarts must be 0 or more",
    );
    assert_rejected(
        with(&["drain", "gracePeriodSeconds"], json!(-5)),
        "drain.gracePeriodSeconds must be 0 or more",
    );
}

#[test]
fn not_exactly_one_provider_is_rejected() {
    assert_rejected(
        with(&["provider"], json!({})),
        "provider must set exactly one of",
    );
}

#[test]
fn durations_that_do_not_parse_are_rejected() {
    for bad in ["5 minutes", "-5m", "5", "m", "1h-30m", "abc"] {
        assert_rejected(
            with(&["drain", "timeout"], json!(bad)),
            "drain.timeout must be a positive duration",
        );
        assert_rejected(
            with(&["health", "readyTimeout"], json!(bad)),
            "health.readyTimeout must be a positive duration",
        );
        assert_rejected(
            with(&["health", "soak"], json!(bad)),
            "health.soak must be a duration",
        );
    }
    assert_rejected(
        with(&["drain", "timeout"], json!("0s")),
        "drain.timeout must be a positive duration",
    );
    assert_rejected(
        with(&["health", "nodeReadyTimeout"], json!("0m")),
        "health.nodeReadyTimeout must be a positive duration",
    );
    for good in ["90s", "1h30m", "1.5h", "250ms"] {
        assert_eq!(
            rejections(&with(&["drain", "timeout"], json!(good)), None),
            Vec::<String>::new(),
            "{good}"
        );
    }
    assert_eq!(
        rejections(&with(&["health", "soak"], json!("0s")), None),
        Vec::<String>::new()
    );
}

#[test]
fn a_changed_target_is_rejected() {
    let old = valid();
    let new = with(&["target"], json!({"image": "ubuntu-2404-20261201"}));
    let got = rejections(&new, Some(&old));
    assert!(
        got.iter().any(|m| m.contains("target is immutable")),
        "{got:?}"
    );
    // Other fields may change.
    let paused = with(&["paused"], json!(true));
    assert_eq!(rejections(&paused, Some(&old)), Vec::<String>::new());
}

#[test]
fn real_image_references_are_admitted() {
    let digest = format!("public.ecr.aws/bottlerocket/x@sha256:{}", "0a".repeat(32));
    let longest = "x".repeat(molt::api::keys::MAX_IMAGE_LEN);
    for image in [
        "ami-0abcdef1234567890",
        "ghcr.io/siderolabs/installer:v1.9.0",
        digest.as_str(),
        "Canonical:0001-com-ubuntu-server-jammy:22_04-lts-gen2:latest",
        "projects/x/global/images/y",
        "ubuntu-2404-20261120",
        longest.as_str(),
    ] {
        assert_eq!(
            rejections(&with(&["target", "image"], json!(image)), None),
            Vec::<String>::new(),
            "{image}"
        );
    }
}

#[test]
fn an_empty_or_too_long_image_is_rejected() {
    let too_long = "x".repeat(molt::api::keys::MAX_IMAGE_LEN + 1);
    for bad in ["", too_long.as_str()] {
        assert_rejected(
            with(&["target", "image"], json!(bad)),
            "target.image must be 1-512 characters long",
        );
    }
    let image = &schema()["properties"]["spec"]["properties"]["target"]["properties"]["image"];
    assert_eq!(image["minLength"], 1);
    assert_eq!(image["maxLength"], molt::api::keys::MAX_IMAGE_LEN);
}

#[test]
fn an_image_with_whitespace_or_control_characters_is_rejected() {
    for bad in [
        "has space",
        " ghcr.io/x:v1",
        "ghcr.io/x:v1\n",
        "tab\there",
        "nul\u{0}",
        "del\u{7f}",
        "nbsp\u{a0}x",
    ] {
        assert_rejected(
            with(&["target", "image"], json!(bad)),
            "target.image must not contain whitespace or control characters",
        );
    }
}

fn analysis(metric: Value) -> Value {
    json!({"prometheus": {"address": "http://prometheus.monitoring:9090"}, "metrics": [metric]})
}

fn error_rate() -> Value {
    json!({"name": "error-rate", "query": "sum(rate(errors_total{node=~\"{{nodes}}\"}[2m]))",
           "failureCondition": {"operator": ">", "value": 0.05}, "interval": "30s"})
}

#[test]
fn a_metrics_analysis_is_admitted() {
    let ok = with(&["analysis"], analysis(error_rate()));
    assert_eq!(rejections(&ok, None), Vec::<String>::new());
}

#[test]
fn bad_metrics_analyses_are_rejected() {
    let mut no_condition = error_rate();
    no_condition
        .as_object_mut()
        .unwrap()
        .remove("failureCondition");
    assert_rejected(
        with(&["analysis"], analysis(no_condition)),
        "a metric needs a successCondition, a failureCondition or both",
    );
    for bad in [
        "prometheus:9090",
        "https://p:9090",
        "http://",
        "http://p:9090/ x",
    ] {
        let mut a = analysis(error_rate());
        a["prometheus"]["address"] = json!(bad);
        assert_rejected(
            with(&["analysis"], a),
            "analysis.prometheus.address must be an http:// URL",
        );
    }
    let mut zero = error_rate();
    zero["interval"] = json!("0s");
    assert_rejected(
        with(&["analysis"], analysis(zero)),
        "metric interval must be a positive duration",
    );
    let mut negative = error_rate();
    negative["failureLimit"] = json!(-1);
    assert_rejected(
        with(&["analysis"], analysis(negative)),
        "metric failureLimit must be 0 or more",
    );
    let mut a = analysis(error_rate());
    a["metrics"] = json!([error_rate(), error_rate()]);
    assert_rejected(
        with(&["analysis"], a),
        "analysis.metrics names must be unique",
    );
    let mut a = analysis(error_rate());
    a["metrics"] = json!([]);
    assert_rejected(
        with(&["analysis"], a),
        "analysis.metrics must list 1 to 10 metrics",
    );
    let mut bad_name = error_rate();
    bad_name["name"] = json!("error rate");
    assert_rejected(
        with(&["analysis"], analysis(bad_name)),
        "metric name must be",
    );
}
