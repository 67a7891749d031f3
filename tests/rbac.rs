//! The ClusterRole in config/rbac and the table in docs/rbac.md describe the same permissions,
//! and the role grants nothing a reviewer would refuse.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use k8s_openapi::api::rbac::v1::ClusterRole;
use std::collections::BTreeSet;

type Rule = (String, String, BTreeSet<String>);

fn role() -> ClusterRole {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/rbac/role.yaml"
    ))
    .unwrap();
    serde_yaml_ng::from_str(&text).unwrap()
}

fn role_rules() -> BTreeSet<Rule> {
    let mut out = BTreeSet::new();
    for r in role().rules.unwrap_or_default() {
        for g in r.api_groups.clone().unwrap_or_default() {
            for res in r.resources.clone().unwrap_or_default() {
                out.insert((g.clone(), res, r.verbs.iter().cloned().collect()));
            }
        }
    }
    out
}

fn table_rules() -> BTreeSet<Rule> {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/rbac.md")).unwrap();
    let mut out = BTreeSet::new();
    for line in text.lines().filter(|l| l.starts_with('|')).skip(2) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let group = cells[0].trim_matches('"').to_string();
        let verbs: BTreeSet<String> = cells[2].split(',').map(|v| v.trim().to_string()).collect();
        for res in cells[1].split(',') {
            out.insert((group.clone(), res.trim().to_string(), verbs.clone()));
        }
    }
    out
}

#[test]
fn the_role_and_its_documentation_agree() {
    assert_eq!(
        role_rules(),
        table_rules(),
        "config/rbac/role.yaml and docs/rbac.md differ"
    );
}

#[test]
fn the_role_is_least_privilege() {
    for (group, resource, verbs) in role_rules() {
        assert!(
            group != "*" && resource != "*" && !verbs.contains("*"),
            "wildcard in {group}/{resource}"
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
                && !verbs.contains("impersonate")
        );
    }
}
