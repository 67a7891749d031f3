//! The roles in config/rbac and the table in docs/rbac.md describe the same permissions, rule by
//! rule, and no role grants anything a reviewer would refuse.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use k8s_openapi::api::rbac::v1::{PolicyRule, RoleRef, Subject};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// (role, apiGroup, resource, resourceNames, verbs). A namespaced Role is named
/// "<name> (namespace)", as in the table; empty resourceNames mean any object.
type Rule = (String, String, String, BTreeSet<String>, BTreeSet<String>);

/// The fields of Role, ClusterRole and their bindings this test reads.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Object {
    kind: String,
    metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    #[serde(default)]
    rules: Vec<PolicyRule>,
    role_ref: Option<RoleRef>,
    #[serde(default)]
    subjects: Vec<Subject>,
}

const MOLT_ROLE: &str = "molt";
const PROVIDER_ROLE: &str = "molt-provider-kwok";

fn rbac_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/rbac")
}

/// Every manifest in config/rbac (all but kustomization.yaml), by file name.
fn manifests() -> Vec<(String, Object)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(rbac_dir()).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        if !file.ends_with(".yaml") || file == "kustomization.yaml" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let object: Object =
            serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("config/rbac/{file}: {e}"));
        out.push((file, object));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn role_label(object: &Object) -> String {
    let name = object.metadata.name.clone().unwrap();
    if object.kind == "Role" {
        format!("{name} (namespace)")
    } else {
        name
    }
}

fn expand(role: &str, rules: &[PolicyRule], out: &mut BTreeSet<Rule>) {
    for r in rules {
        let names: BTreeSet<String> = r.resource_names.iter().flatten().cloned().collect();
        let verbs: BTreeSet<String> = r.verbs.iter().cloned().collect();
        for g in r.api_groups.iter().flatten() {
            for res in r.resources.iter().flatten() {
                let rule = (
                    role.into(),
                    g.clone(),
                    res.clone(),
                    names.clone(),
                    verbs.clone(),
                );
                assert!(out.insert(rule), "{role}: {g}/{res} is granted twice");
            }
        }
    }
}

fn role_rules() -> BTreeSet<Rule> {
    let mut out = BTreeSet::new();
    for (_, object) in manifests() {
        if object.kind == "ClusterRole" || object.kind == "Role" {
            expand(&role_label(&object), &object.rules, &mut out);
        }
    }
    out
}

fn list(cell: &str) -> BTreeSet<String> {
    cell.split(',')
        .map(|v| v.trim().trim_matches('"').to_string())
        .filter(|v| !v.is_empty() && v != "—")
        .collect()
}

/// The rows of the table whose header starts with `| role | apiGroup |`.
fn table_rules() -> BTreeSet<Rule> {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/rbac.md")).unwrap();
    let rows = text
        .lines()
        .skip_while(|l| !l.starts_with("| role | apiGroup |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'));
    let mut out = BTreeSet::new();
    for line in rows {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        assert_eq!(cells.len(), 6, "docs/rbac.md: malformed row {line}");
        let (role, group) = (cells[0].to_string(), cells[1].trim_matches('"').to_string());
        for res in list(cells[2]) {
            let rule = (
                role.clone(),
                group.clone(),
                res,
                list(cells[3]),
                list(cells[4]),
            );
            assert!(out.insert(rule), "docs/rbac.md: duplicate row {line}");
        }
    }
    assert!(!out.is_empty(), "docs/rbac.md: the rules table is missing");
    out
}

#[test]
fn the_roles_and_their_documentation_agree() {
    let (roles, table) = (role_rules(), table_rules());
    let undocumented: Vec<_> = roles.difference(&table).collect();
    let not_granted: Vec<_> = table.difference(&roles).collect();
    assert!(
        undocumented.is_empty() && not_granted.is_empty(),
        "config/rbac and docs/rbac.md differ\n  in config/rbac only: {undocumented:#?}\n  \
         in docs/rbac.md only: {not_granted:#?}"
    );
}

#[test]
fn the_roles_are_least_privilege() {
    for (role, group, resource, names, verbs) in role_rules() {
        assert!(
            group != "*" && resource != "*" && !verbs.contains("*") && !names.contains("*"),
            "{role}: wildcard in {group}/{resource}"
        );
        assert_ne!(resource, "secrets", "molt never reads Secrets");
        if resource == "pods" {
            assert!(
                !verbs.contains("delete") && !verbs.contains("deletecollection"),
                "molt never deletes pods"
            );
        }
        assert!(
            !verbs.contains("escalate")
                && !verbs.contains("bind")
                && !verbs.contains("impersonate"),
            "{role}: {group}/{resource} {verbs:?}"
        );
        assert!(
            !verbs.contains("deletecollection") && !verbs.contains("update"),
            "{role}: {group}/{resource}: molt patches, it never replaces or bulk-deletes"
        );
        if resource == "nodes" && (verbs.contains("create") || verbs.contains("delete")) {
            assert_eq!(
                role, PROVIDER_ROLE,
                "only the provider creates or deletes nodes"
            );
        }
        if resource == "leases" {
            assert!(
                role.ends_with(" (namespace)"),
                "{role}: leases only in molt's own namespace"
            );
            // create cannot be limited by name; everything else is limited to molt's Lease.
            assert!(
                verbs == BTreeSet::from(["create".to_string()]) || !names.is_empty(),
                "{role}: leases {verbs:?} must name the Lease"
            );
        }
    }
}

#[test]
fn every_role_is_bound_to_molt_and_listed() {
    let manifests = manifests();
    for (file, role) in manifests.iter().filter(|(_, o)| o.kind.ends_with("Role")) {
        let name = role.metadata.name.clone().unwrap();
        let binding_kind = format!("{}Binding", role.kind);
        let bound = manifests.iter().any(|(_, b)| {
            b.kind == binding_kind
                && b.role_ref
                    .as_ref()
                    .is_some_and(|r| r.kind == role.kind && r.name == name)
                && b.subjects.iter().any(|s| {
                    s.kind == "ServiceAccount"
                        && s.name == "molt"
                        && s.namespace.as_deref() == Some("molt-system")
                })
        });
        assert!(
            bound,
            "config/rbac/{file}: {name} is not bound to molt-system/molt"
        );
        if role.kind == "Role" {
            assert_eq!(role.metadata.namespace.as_deref(), Some("molt-system"));
        }
    }
    // The e2e harness reads the ClusterRole molt from this exact file.
    let core = manifests.iter().find(|(f, _)| f == "role.yaml").unwrap();
    assert_eq!(core.1.metadata.name.as_deref(), Some(MOLT_ROLE));

    let kustomization = std::fs::read_to_string(rbac_dir().join("kustomization.yaml")).unwrap();
    let kustomization: serde_json::Value = serde_yaml_ng::from_str(&kustomization).unwrap();
    let listed: BTreeSet<&str> = kustomization["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r.as_str())
        .collect();
    let files: BTreeSet<&str> = manifests.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        listed, files,
        "config/rbac/kustomization.yaml must list every manifest"
    );
}
