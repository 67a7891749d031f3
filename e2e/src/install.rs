//! What molt needs on the cluster before it runs: the CRD from `crds/`, and its own identity
//! (namespace, ServiceAccount, the ClusterRoles it ships, a leader-election Role) with a
//! kubeconfig for it.

use std::path::Path;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::config::{AuthInfo, Kubeconfig};
use serde_json::{Value, json};

use crate::cluster::service_account_token;
use crate::molt::{MANAGER, MOLT_CLUSTER_ROLE, MOLT_NAMESPACE, MOLT_SERVICE_ACCOUNT};
use crate::{Cluster, paths, wait_for};

/// Installs the CRD from `crds/` (server-side apply, idempotent) and waits
/// until it is Established.
pub async fn install_crd(cluster: &Cluster) -> Result<()> {
    let path = paths::workspace()
        .join("crds")
        .join("nodeupdateplans.molt.dev.yaml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let crd: CustomResourceDefinition =
        serde_yaml_ng::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let crds: Api<CustomResourceDefinition> = Api::all(cluster.client());
    let name = crd.name_any();
    crds.patch(
        &name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&crd),
    )
    .await
    .context("applying the NodeUpdatePlan CRD")?;
    wait_for(&crds, &name, "the CRD to be Established", |c| {
        c.and_then(|c| c.status.as_ref())
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            })
    })
    .await?;
    Ok(())
}

/// Reads a manifest of `config/` (YAML) as JSON.
pub fn config_manifest(relative: &str) -> Result<Value> {
    let path = paths::workspace().join(relative);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_yaml_ng::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// The ClusterRoles molt ships in `config/rbac/`: the scenarios prove they are enough.
const SHIPPED_CLUSTER_ROLES: [&str; 2] = [
    "config/rbac/role.yaml",
    "config/rbac/provider_kwok_role.yaml",
];

/// Creates (idempotently) molt's namespace, ServiceAccount, and the shipped ClusterRoles
/// bound to it.
pub(crate) async fn ensure_molt_identity(cluster: &Cluster) -> Result<()> {
    let client = cluster.client();
    let apply = PatchParams::apply(MANAGER).force();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .patch(
            MOLT_NAMESPACE,
            &apply,
            &Patch::Apply(json!({
                "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": MOLT_NAMESPACE}
            })),
        )
        .await
        .context("applying molt's namespace")?;
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), MOLT_NAMESPACE);
    sas.patch(
        MOLT_SERVICE_ACCOUNT,
        &apply,
        &Patch::Apply(json!({
            "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": MOLT_SERVICE_ACCOUNT, "namespace": MOLT_NAMESPACE}
        })),
    )
    .await
    .context("applying molt's ServiceAccount")?;
    let roles: Api<ClusterRole> = Api::all(client.clone());
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    for file in SHIPPED_CLUSTER_ROLES {
        let role = config_manifest(file)?;
        let name = role
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or(MOLT_CLUSTER_ROLE)
            .to_string();
        roles
            .patch(&name, &apply, &Patch::Apply(role))
            .await
            .with_context(|| format!("applying the ClusterRole of {file}"))?;
        let binding = format!("molt-e2e-{name}");
        bindings
            .patch(
                &binding,
                &apply,
                &Patch::Apply(json!({
                    "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                    "metadata": {"name": binding},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
                    "subjects": [{"kind": "ServiceAccount", "name": MOLT_SERVICE_ACCOUNT, "namespace": MOLT_NAMESPACE}]
                })),
            )
            .await
            .with_context(|| format!("binding the ClusterRole {name}"))?;
    }
    Ok(())
}

/// Grants molt's ServiceAccount the shipped leader-election Role
/// (`config/rbac/leader_election_role.yaml`), for the Lease `lease` instead of `molt`, so
/// that each test elects on a Lease of its own.
pub async fn grant_lease(cluster: &Cluster, lease: &str) -> Result<()> {
    ensure_molt_identity(cluster).await?;
    let apply = PatchParams::apply(MANAGER).force();
    let mut role = config_manifest("config/rbac/leader_election_role.yaml")?;
    let name = format!("molt-e2e-lease-{lease}");
    role["metadata"] = json!({"name": name, "namespace": MOLT_NAMESPACE});
    for rule in role["rules"].as_array_mut().into_iter().flatten() {
        if rule.get("resourceNames").is_some() {
            rule["resourceNames"] = json!([lease]);
        }
    }
    let roles: Api<k8s_openapi::api::rbac::v1::Role> =
        Api::namespaced(cluster.client(), MOLT_NAMESPACE);
    roles
        .patch(&name, &apply, &Patch::Apply(role))
        .await
        .context("applying the leader-election Role")?;
    let bindings: Api<k8s_openapi::api::rbac::v1::RoleBinding> =
        Api::namespaced(cluster.client(), MOLT_NAMESPACE);
    bindings
        .patch(
            &name,
            &apply,
            &Patch::Apply(json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": name, "namespace": MOLT_NAMESPACE},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                "subjects": [{"kind": "ServiceAccount", "name": MOLT_SERVICE_ACCOUNT, "namespace": MOLT_NAMESPACE}]
            })),
        )
        .await
        .context("binding the leader-election Role")?;
    Ok(())
}

/// Writes a kubeconfig that authenticates as the ServiceAccount `namespace/name` with a
/// token from the TokenRequest API.
pub async fn service_account_kubeconfig(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    path: &Path,
) -> Result<()> {
    let token = service_account_token(&cluster.client(), namespace, name, 7200).await?;
    let mut kc = Kubeconfig::read_from(cluster.kubeconfig())
        .with_context(|| format!("reading {}", cluster.kubeconfig().display()))?;
    let auth: AuthInfo = serde_json::from_value(json!({ "token": token }))?;
    for named in &mut kc.auth_infos {
        named.auth_info = Some(auth.clone());
    }
    let text = serde_yaml_ng::to_string(&kc)?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
