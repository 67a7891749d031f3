//! The Helm chart and the kustomize overlays install the same molt: the CRD of crds/, the rules of
//! config/rbac, the same hardened pod. Rendered with the pinned helm and kubectl (`make
//! e2e-tools`); no cluster is needed. Applying the pod to a real API server under the
//! `restricted` Pod Security Standard is another test's job; this one checks the rules as written.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use molt_e2e::paths::workspace;
use molt_e2e::tools::tool;
use serde::Deserialize;
use serde_json::Value;

const NAMESPACE: &str = "molt-system";

/// Every optional object of the chart switched on.
const ALL_FEATURES: &[&str] = &[
    "metrics.serviceMonitor.enabled=true",
    "metrics.prometheusRule.enabled=true",
    "metrics.dashboard.enabled=true",
    "planSelector=team=payments",
    "priorityClassName=system-cluster-critical",
    "podAnnotations.example\\.com/a=b",
    "podLabels.team=platform",
    "nodeSelector.kubernetes\\.io/os=linux",
    "tolerations[0].key=dedicated,tolerations[0].operator=Exists",
    "imagePullSecrets[0].name=registry",
    "extraArgs[0]=--http-addr=0.0.0.0:8080",
];

fn run(program: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .current_dir(workspace())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", program.display()));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!(
            "{} {args:?}: {}\n{text}{}",
            program.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn documents(text: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn try_helm_template(release: &str, sets: &[&str]) -> Result<Vec<Value>, String> {
    let helm = tool("helm").unwrap();
    let mut args = vec!["template", release, "charts/molt", "--namespace", NAMESPACE];
    for set in sets {
        args.extend(["--set", set]);
    }
    run(&helm, &args).map(|t| documents(&t))
}

fn helm_template(release: &str, sets: &[&str]) -> Vec<Value> {
    try_helm_template(release, sets).unwrap_or_else(|e| panic!("{e}"))
}

fn kustomize(dir: &str) -> Vec<Value> {
    let kubectl = tool("kubectl").unwrap();
    documents(&run(&kubectl, &["kustomize", dir]).unwrap_or_else(|e| panic!("{e}")))
}

fn file(path: &str) -> Value {
    let text = std::fs::read_to_string(workspace().join(path)).unwrap();
    documents(&text).into_iter().next().unwrap()
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn one<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    let found = of_kind(objects, kind);
    assert_eq!(found.len(), 1, "expected one {kind}, found {}", found.len());
    found[0]
}

/// YAML round trips turn `0.0` into `0`; compare numbers as numbers.
fn normalized(v: &Value) -> Value {
    match v {
        Value::Number(n) => Value::from(n.as_f64().unwrap()),
        Value::Array(a) => Value::Array(a.iter().map(normalized).collect()),
        Value::Object(o) => {
            Value::Object(o.iter().map(|(k, v)| (k.clone(), normalized(v))).collect())
        }
        other => other.clone(),
    }
}

// ---------------------------------------------------------------- CRD

fn without_keep(crd: &Value) -> Value {
    let mut crd = crd.clone();
    let metadata = crd["metadata"].as_object_mut().unwrap();
    if let Some(Value::Object(annotations)) = metadata.get_mut("annotations") {
        annotations.remove("helm.sh/resource-policy");
        if annotations.is_empty() {
            metadata.remove("annotations");
        }
    }
    normalized(&crd)
}

#[test]
fn chart_and_kustomize_install_the_crd_of_crds() {
    let original = normalized(&file("crds/nodeupdateplans.molt.dev.yaml"));

    let chart = helm_template("molt", &[]);
    let crd = one(&chart, "CustomResourceDefinition");
    assert_eq!(
        crd["metadata"]["annotations"]["helm.sh/resource-policy"], "keep",
        "helm uninstall must keep the CRD, and with it every plan"
    );
    assert!(
        without_keep(crd) == original,
        "the chart's CRD differs from crds/"
    );

    let kustomized = kustomize("config/default");
    let crd = one(&kustomized, "CustomResourceDefinition");
    assert!(
        normalized(crd) == original,
        "config/default's CRD differs from crds/"
    );

    let unkept = helm_template("molt", &["crds.keep=false"]);
    let crd = one(&unkept, "CustomResourceDefinition");
    assert!(crd["metadata"]["annotations"]["helm.sh/resource-policy"].is_null());

    let without = helm_template("molt", &["crds.install=false"]);
    assert!(of_kind(&without, "CustomResourceDefinition").is_empty());
}

// ---------------------------------------------------------------- RBAC

/// (apiGroup, resource, resourceNames, verbs), one per group and resource.
type Rule = (String, String, BTreeSet<String>, BTreeSet<String>);

fn strings(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

fn rules(role: &Value) -> BTreeSet<Rule> {
    let mut out = BTreeSet::new();
    for r in role["rules"].as_array().unwrap() {
        for g in strings(&r["apiGroups"]) {
            for res in strings(&r["resources"]) {
                out.insert((
                    g.clone(),
                    res,
                    strings(&r["resourceNames"]),
                    strings(&r["verbs"]),
                ));
            }
        }
    }
    out
}

/// Roles by purpose: the core ClusterRole, the kwok provider's, leader election's.
fn roles_by_purpose(objects: &[Value]) -> BTreeMap<String, (String, BTreeSet<Rule>)> {
    let mut out = BTreeMap::new();
    for role in objects
        .iter()
        .filter(|o| o["kind"] == "ClusterRole" || o["kind"] == "Role")
    {
        let name = role["metadata"]["name"].as_str().unwrap();
        let purpose = if name.ends_with("-provider-kwok") {
            "provider-kwok"
        } else if name.ends_with("-leader-election") {
            "leader-election"
        } else {
            "core"
        };
        let kind = role["kind"].as_str().unwrap().to_string();
        let previous = out.insert(purpose.to_string(), (kind, rules(role)));
        assert!(previous.is_none(), "two {purpose} roles");
    }
    out
}

fn config_rbac() -> BTreeMap<String, (String, BTreeSet<Rule>)> {
    let files = [
        "role.yaml",
        "provider_kwok_role.yaml",
        "leader_election_role.yaml",
    ];
    roles_by_purpose(&files.map(|f| file(&format!("config/rbac/{f}"))))
}

#[test]
fn chart_and_kustomize_grant_the_rules_of_config_rbac() {
    let expected = config_rbac();
    assert_eq!(expected.len(), 3);
    // A release name other than molt: roles are matched by purpose, not by name.
    for (what, objects) in [
        ("the chart", helm_template("molt", &[])),
        (
            "the chart (release prod)",
            helm_template("prod", ALL_FEATURES),
        ),
        ("config/default", kustomize("config/default")),
    ] {
        assert_eq!(
            roles_by_purpose(&objects),
            expected,
            "{what}: roles differ from config/rbac"
        );
        let role = one(&objects, "Role");
        assert_eq!(
            role["metadata"]["namespace"], NAMESPACE,
            "{what}: the Lease Role's namespace"
        );
        // Every role is bound to the ServiceAccount the pod runs as.
        let account =
            one(&objects, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"].clone();
        assert_eq!(
            one(&objects, "ServiceAccount")["metadata"]["name"],
            account,
            "{what}"
        );
        for binding in objects
            .iter()
            .filter(|o| o["kind"] == "ClusterRoleBinding" || o["kind"] == "RoleBinding")
        {
            let subject = &binding["subjects"][0];
            assert_eq!(
                subject["name"], account,
                "{what}: {}",
                binding["metadata"]["name"]
            );
            assert_eq!(subject["namespace"], NAMESPACE, "{what}");
            let role_name = &binding["roleRef"]["name"];
            assert!(
                objects
                    .iter()
                    .any(|o| o["kind"] == binding["roleRef"]["kind"]
                        && &o["metadata"]["name"] == role_name),
                "{what}: {role_name} is bound but not rendered"
            );
        }
    }
}

#[test]
fn the_lease_role_names_the_configured_lease() {
    let objects = helm_template("molt", &["leaderElection.leaseName=molt-payments"]);
    let (_, rules) = &roles_by_purpose(&objects)["leader-election"];
    let named: BTreeSet<_> = rules.iter().flat_map(|r| r.2.iter().cloned()).collect();
    assert_eq!(named, BTreeSet::from(["molt-payments".to_string()]));
    assert!(args(&objects).contains(&"--leader-election-name=molt-payments".to_string()));
}

#[test]
fn without_the_kwok_provider_nothing_creates_or_deletes_nodes() {
    let objects = helm_template("molt", &["provider.kwok.enabled=false"]);
    let roles = roles_by_purpose(&objects);
    assert!(!roles.contains_key("provider-kwok"));
    assert!(roles.contains_key("core") && roles.contains_key("leader-election"));
    for (purpose, (_, rules)) in roles {
        for (group, resource, _, verbs) in rules {
            let nodes = group.is_empty() && (resource == "nodes" || resource == "*");
            assert!(
                !(nodes
                    && (verbs.contains("create")
                        || verbs.contains("delete")
                        || verbs.contains("*"))),
                "{purpose} grants nodes {verbs:?} without the kwok provider"
            );
        }
    }
}

// ---------------------------------------------------------------- the pod

fn pod_spec(objects: &[Value]) -> &Value {
    &one(objects, "Deployment")["spec"]["template"]["spec"]
}

fn container(objects: &[Value]) -> &Value {
    let containers = pod_spec(objects)["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    &containers[0]
}

fn args(objects: &[Value]) -> Vec<String> {
    container(objects)["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn chart_and_kustomize_run_the_same_pod() {
    let chart = helm_template("molt", &[]);
    let kustomized = kustomize("config/default");
    assert_eq!(args(&chart), args(&kustomized), "container args");
    for key in [
        "image",
        "imagePullPolicy",
        "env",
        "ports",
        "livenessProbe",
        "readinessProbe",
        "resources",
        "securityContext",
    ] {
        assert_eq!(
            normalized(&container(&chart)[key]),
            normalized(&container(&kustomized)[key]),
            "container {key}"
        );
    }
    for key in [
        "securityContext",
        "terminationGracePeriodSeconds",
        "serviceAccountName",
        "topologySpreadConstraints",
    ] {
        assert_eq!(
            pod_spec(&chart)[key],
            pod_spec(&kustomized)[key],
            "pod {key}"
        );
    }
    let replicas = |o: &[Value]| one(o, "Deployment")["spec"]["replicas"].clone();
    assert_eq!(replicas(&chart), replicas(&kustomized));
    assert_eq!(replicas(&chart), 2);
    let args = args(&chart);
    assert!(args[0] == "run" && args.contains(&"--leader-elect".to_string()));

    // The probes and the Service reach the port molt listens on.
    for objects in [&chart, &kustomized] {
        let c = container(objects);
        assert_eq!(c["ports"][0]["name"], "http");
        assert_eq!(c["ports"][0]["containerPort"], 8080);
        assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
        assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
        let service = one(objects, "Service");
        assert_eq!(service["spec"]["ports"][0]["name"], "http-metrics");
        assert_eq!(service["spec"]["ports"][0]["targetPort"], "http");
        let budget = one(objects, "PodDisruptionBudget");
        assert_eq!(budget["spec"]["maxUnavailable"], 1);
        let pod_labels = &one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"];
        for selector in [
            &service["spec"]["selector"],
            &budget["spec"]["selector"]["matchLabels"],
        ] {
            for (k, v) in selector.as_object().unwrap() {
                assert_eq!(&pod_labels[k], v, "selector {k} does not match the pod");
            }
        }
    }
}

/// Violations of the `restricted` Pod Security Standard (v1.35), as written in the standard.
fn restricted_violations(spec: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for key in ["hostNetwork", "hostPID", "hostIPC"] {
        if spec[key] == true {
            out.push(format!("{key} is set"));
        }
    }
    let allowed_volumes = [
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    ];
    for volume in spec["volumes"].as_array().into_iter().flatten() {
        for key in volume.as_object().unwrap().keys().filter(|k| *k != "name") {
            if !allowed_volumes.contains(&key.as_str()) {
                out.push(format!("volume type {key}"));
            }
        }
    }
    let pod = &spec["securityContext"];
    let containers = ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .flat_map(|k| spec[k].as_array().into_iter().flatten());
    for c in containers {
        let name = c["name"].as_str().unwrap_or("?");
        let sc = &c["securityContext"];
        if sc["privileged"] == true {
            out.push(format!("{name}: privileged"));
        }
        if sc["allowPrivilegeEscalation"] != false {
            out.push(format!("{name}: allowPrivilegeEscalation is not false"));
        }
        if !strings(&sc["capabilities"]["drop"]).contains("ALL") {
            out.push(format!("{name}: capabilities do not drop ALL"));
        }
        if strings(&sc["capabilities"]["add"])
            .iter()
            .any(|c| c != "NET_BIND_SERVICE")
        {
            out.push(format!("{name}: adds capabilities"));
        }
        let non_root = if sc["runAsNonRoot"].is_null() {
            &pod["runAsNonRoot"]
        } else {
            &sc["runAsNonRoot"]
        };
        if non_root != true {
            out.push(format!("{name}: runAsNonRoot is not true"));
        }
        for ctx in [pod, sc] {
            if ctx["runAsUser"] == 0 {
                out.push(format!("{name}: runAsUser 0"));
            }
        }
        let seccomp = if sc["seccompProfile"].is_null() {
            &pod["seccompProfile"]
        } else {
            &sc["seccompProfile"]
        };
        if seccomp["type"] != "RuntimeDefault" && seccomp["type"] != "Localhost" {
            out.push(format!("{name}: seccompProfile is not RuntimeDefault"));
        }
        for port in c["ports"].as_array().into_iter().flatten() {
            if port.get("hostPort").is_some_and(|p| p != 0) {
                out.push(format!("{name}: hostPort"));
            }
        }
    }
    out
}

#[test]
fn the_pod_meets_the_restricted_pod_security_standard() {
    for (what, objects) in [
        ("the chart", helm_template("molt", &[])),
        (
            "the chart, every feature",
            helm_template("prod", ALL_FEATURES),
        ),
        ("config/default", kustomize("config/default")),
    ] {
        let violations = restricted_violations(pod_spec(&objects));
        assert!(violations.is_empty(), "{what}: {violations:#?}");
        // Beyond the standard: nothing is written to the image's file system.
        assert_eq!(
            container(&objects)["securityContext"]["readOnlyRootFilesystem"],
            true
        );
    }
    // The checker itself notices a violation.
    let mut bad = pod_spec(&helm_template("molt", &[])).clone();
    bad["hostNetwork"] = Value::Bool(true);
    bad["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = Value::Bool(true);
    assert_eq!(restricted_violations(&bad).len(), 2);
}

#[test]
fn the_namespace_enforces_the_restricted_standard() {
    let objects = kustomize("config/default");
    let namespace = one(&objects, "Namespace");
    assert_eq!(namespace["metadata"]["name"], NAMESPACE);
    assert_eq!(
        namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
}

#[test]
fn values_reach_the_pod() {
    let objects = helm_template("prod", ALL_FEATURES);
    let given = args(&objects);
    assert!(
        given.contains(&"--plan-selector=team=payments".to_string()),
        "{given:?}"
    );
    assert_eq!(
        given.last().unwrap(),
        "--http-addr=0.0.0.0:8080",
        "extraArgs come last"
    );
    let spec = pod_spec(&objects);
    assert_eq!(spec["priorityClassName"], "system-cluster-critical");
    assert_eq!(spec["nodeSelector"]["kubernetes.io/os"], "linux");
    assert_eq!(spec["tolerations"][0]["key"], "dedicated");
    assert_eq!(spec["imagePullSecrets"][0]["name"], "registry");
    let template = &one(&objects, "Deployment")["spec"]["template"]["metadata"];
    assert_eq!(template["annotations"]["example.com/a"], "b");
    assert_eq!(template["labels"]["team"], "platform");

    let tagged = helm_template("molt", &["image.tag=0.2.0-rc.1"]);
    assert_eq!(
        container(&tagged)["image"],
        "ghcr.io/molt-dev/molt:0.2.0-rc.1"
    );

    // One replica: no budget (it could only block drains); two acting replicas are refused.
    let single = helm_template("molt", &["replicas=1"]);
    assert!(of_kind(&single, "PodDisruptionBudget").is_empty());
    let unsafe_pair = try_helm_template("molt", &["leaderElection.enabled=false"]);
    assert!(
        unsafe_pair.is_err(),
        "two replicas without leader election must not render"
    );
    let lone = helm_template("molt", &["replicas=1", "leaderElection.enabled=false"]);
    assert!(!args(&lone).contains(&"--leader-elect".to_string()));
    assert!(of_kind(&lone, "Role").is_empty());
}

// ---------------------------------------------------------------- monitoring

fn is_dashboard(o: &Value) -> bool {
    o["kind"] == "ConfigMap" && o["metadata"]["labels"]["grafana_dashboard"] == "1"
}

#[test]
fn monitoring_objects_appear_only_when_enabled() {
    let defaults = helm_template("molt", &[]);
    assert!(of_kind(&defaults, "ServiceMonitor").is_empty());
    assert!(of_kind(&defaults, "PrometheusRule").is_empty());
    assert!(!defaults.iter().any(is_dashboard));
    assert!(of_kind(&kustomize("config/default"), "ServiceMonitor").is_empty());

    let monitor = helm_template("molt", &["metrics.serviceMonitor.enabled=true"]);
    assert_eq!(of_kind(&monitor, "ServiceMonitor").len(), 1);
    assert!(of_kind(&monitor, "PrometheusRule").is_empty() && !monitor.iter().any(is_dashboard));

    let alerts = file("config/monitoring/alerts.yaml");
    let rules = helm_template("molt", &["metrics.prometheusRule.enabled=true"]);
    assert_eq!(
        one(&rules, "PrometheusRule")["spec"]["groups"],
        alerts["groups"]
    );
    assert!(of_kind(&rules, "ServiceMonitor").is_empty() && !rules.iter().any(is_dashboard));

    let dashboards = helm_template("molt", &["metrics.dashboard.enabled=true"]);
    let configmap = dashboards.iter().find(|o| is_dashboard(o)).unwrap();
    let json: Value =
        serde_json::from_str(configmap["data"]["molt.json"].as_str().unwrap()).unwrap();
    let original =
        std::fs::read_to_string(workspace().join("config/monitoring/dashboard.json")).unwrap();
    assert_eq!(json, serde_json::from_str::<Value>(&original).unwrap());
    assert!(of_kind(&dashboards, "ServiceMonitor").is_empty());
    assert!(of_kind(&dashboards, "PrometheusRule").is_empty());

    // The ServiceMonitor finds the metrics Service and its port, in the chart and in kustomize.
    let kustomized = kustomize("config/prometheus");
    assert_eq!(
        one(&kustomized, "PrometheusRule")["spec"]["groups"],
        alerts["groups"]
    );
    for (monitors, services) in [
        (&monitor, &monitor),
        (&kustomized, &kustomize("config/default")),
    ] {
        let sm = one(monitors, "ServiceMonitor");
        let service = one(services, "Service");
        for (k, v) in sm["spec"]["selector"]["matchLabels"].as_object().unwrap() {
            assert_eq!(
                &service["metadata"]["labels"][k], v,
                "ServiceMonitor selector {k}"
            );
        }
        assert_eq!(
            sm["spec"]["endpoints"][0]["port"],
            service["spec"]["ports"][0]["name"]
        );
    }
}

#[test]
fn the_chart_lints_and_the_samples_render() {
    let helm = tool("helm").unwrap();
    run(&helm, &["lint", "charts/molt"]).unwrap_or_else(|e| panic!("{e}"));
    let mut args = vec!["lint", "charts/molt"];
    for set in ALL_FEATURES {
        args.extend(["--set", set]);
    }
    run(&helm, &args).unwrap_or_else(|e| panic!("{e}"));
    let samples = kustomize("config/samples");
    assert_eq!(of_kind(&samples, "NodeUpdatePlan").len(), 4);
}
