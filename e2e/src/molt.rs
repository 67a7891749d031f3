//! Running molt against the local cluster: the CRD, molt's own identity, the
//! `molt run` process (killed, restarted and stopped by the test), plans, and
//! the clean-up of everything a scenario leaves behind.
//!
//! molt runs as the ServiceAccount `molt-e2e-system/molt`, bound to the
//! ClusterRole molt ships (`config/rbac/role.yaml`) — so every scenario also
//! proves that role is sufficient — not as the administrator the tests use, so the API
//! server's audit log tells molt's requests apart from everyone else's (see
//! [`crate::checker`]). Each test gives its plans a unique `molt.dev/test`
//! label and starts its own molt with `--plan-selector molt.dev/test=<id>`, so
//! tests running side by side never see each other's plans.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Event, Namespace, Node, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::config::{AuthInfo, Kubeconfig};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::{Cluster, paths, unique_name, wait_for};

// The node helpers lived here first; they are in `crate::k8s` with the other object helpers.
pub use crate::k8s::{
    annotation, cordon_by_hand, is_unschedulable, label, nodes_matching, set_unschedulable,
};

/// Label that ties a plan to the test (and the molt process) that owns it.
pub const TEST_LABEL: &str = "molt.dev/test";
/// Namespace of molt's ServiceAccount.
pub const MOLT_NAMESPACE: &str = "molt-e2e-system";
/// Name of molt's ServiceAccount.
pub const MOLT_SERVICE_ACCOUNT: &str = "molt";
/// Field manager the harness applies with.
const MANAGER: &str = "molt-e2e";
/// The ClusterRole of config/rbac/role.yaml.
const MOLT_CLUSTER_ROLE: &str = "molt";

/// The user name molt's requests carry (in the audit log, for instance).
pub fn molt_username() -> String {
    format!("system:serviceaccount:{MOLT_NAMESPACE}:{MOLT_SERVICE_ACCOUNT}")
}

/// molt's node marks (the same strings as molt's `api::keys`, repeated here on
/// purpose: the tests judge molt by its documented contract, not by its code).
pub mod marks {
    pub const IMAGE_LABEL: &str = "molt.dev/image";
    pub const PLAN_LABEL: &str = "molt.dev/plan";
    pub const CORDONED_BY: &str = "molt.dev/cordoned-by";
    pub const CLAIMED_BY: &str = "molt.dev/claimed-by";
    pub const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";
}

/// The molt binary: `MOLT_BIN`, else `molt` in the test executable's profile
/// directory or next to the running binary, else `target/debug/molt` in the workspace.
pub fn molt_binary() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("MOLT_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let candidates = [
        paths::profile_dir().map(|d| d.join("molt")),
        paths::exe_dir().map(|d| d.join("molt")),
        Some(paths::workspace().join("target").join("debug").join("molt")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.is_file())
        .ok_or_else(|| anyhow!("the molt binary is missing: run `cargo build -p molt` first"))
}

/// Where molt's logs (and its kubeconfig) go: `target/e2e-molt/`.
pub fn log_dir() -> PathBuf {
    paths::profile_dir()
        .and_then(|d| d.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| paths::workspace().join("target"))
        .join("e2e-molt")
}

/// The NodeUpdatePlan resource, used untyped: the tests read status as the
/// JSON a user sees, not through molt's Rust types.
pub fn plan_resource() -> ApiResource {
    ApiResource {
        group: "molt.dev".into(),
        version: "v1alpha1".into(),
        api_version: "molt.dev/v1alpha1".into(),
        kind: "NodeUpdatePlan".into(),
        plural: "nodeupdateplans".into(),
    }
}

pub fn plans(client: Client) -> Api<DynamicObject> {
    Api::all_with(client, &plan_resource())
}

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
async fn ensure_molt_identity(cluster: &Cluster) -> Result<()> {
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
    let sas: Api<ServiceAccount> = Api::namespaced(cluster.client(), namespace);
    let request: TokenRequest = serde_json::from_value(json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": { "expirationSeconds": 7200 }
    }))?;
    let token = sas
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .with_context(|| format!("requesting a token for {namespace}/{name}"))?
        .status
        .map(|s| s.token)
        .ok_or_else(|| anyhow!("the TokenRequest for {namespace}/{name} returned no token"))?;
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

/// How a [`Molt`] is started.
#[derive(Debug, Clone, Default)]
pub struct MoltOptions {
    /// `--instance` (default `molt-e2e-<test id>`): the Lease holder identity and the
    /// `(…)` in molt's User-Agent, which the audit log records.
    pub instance: Option<String>,
    /// Run as this ServiceAccount `(namespace, name)`, whose permissions someone else granted
    /// (the chart, for instance). Default: molt's own, bound to the shipped roles.
    pub service_account: Option<(String, String)>,
    /// Arguments after `run` and before the harness's own.
    pub args: Vec<String>,
    /// Environment variables of the process (`MOLT_LOG` included: the default is
    /// `info,molt=debug`).
    pub env: Vec<(String, String)>,
    /// `--plan-selector` (default `molt.dev/test=<test id>`).
    pub plan_selector: Option<String>,
    /// Run with the cluster's administrator kubeconfig instead of a ServiceAccount's, as a
    /// person trying molt out would (the demo).
    pub as_admin: bool,
    /// The log file, started afresh (default `target/e2e-molt/<test id or instance>.log`,
    /// appended to).
    pub log: Option<PathBuf>,
}

/// A `molt run` process reconciling only one test's plans. SIGKILLed on drop.
pub struct Molt {
    test_id: String,
    instance: String,
    username: String,
    options: MoltOptions,
    kubeconfig: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    starts: u32,
}

impl Molt {
    /// Starts `molt run --plan-selector molt.dev/test=<test_id>` as molt's
    /// ServiceAccount; logs go to `target/e2e-molt/<test_id>.log`.
    pub async fn start(cluster: &Cluster, test_id: &str) -> Result<Self> {
        Self::start_with(cluster, test_id, MoltOptions::default()).await
    }

    /// [`Molt::start`] with options; logs go to `target/e2e-molt/<instance>.log`.
    pub async fn start_with(
        cluster: &Cluster,
        test_id: &str,
        options: MoltOptions,
    ) -> Result<Self> {
        let dir = log_dir();
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let instance = options
            .instance
            .clone()
            .unwrap_or_else(|| format!("molt-e2e-{test_id}"));
        let file = if options.instance.is_some() {
            instance.clone()
        } else {
            test_id.to_string()
        };
        let (kubeconfig, username) = if options.as_admin {
            (cluster.kubeconfig().to_path_buf(), String::new())
        } else {
            let kubeconfig = dir.join(format!("{file}.kubeconfig"));
            let (ns, sa) = match &options.service_account {
                Some((ns, sa)) => (ns.clone(), sa.clone()),
                None => {
                    ensure_molt_identity(cluster).await?;
                    (MOLT_NAMESPACE.to_string(), MOLT_SERVICE_ACCOUNT.to_string())
                }
            };
            service_account_kubeconfig(cluster, &ns, &sa, &kubeconfig).await?;
            (kubeconfig, format!("system:serviceaccount:{ns}:{sa}"))
        };
        let log = match &options.log {
            Some(log) => {
                std::fs::File::create(log)
                    .with_context(|| format!("creating {}", log.display()))?;
                log.clone()
            }
            None => dir.join(format!("{file}.log")),
        };
        let mut molt = Self {
            test_id: test_id.to_string(),
            instance,
            username,
            options,
            kubeconfig,
            log,
            child: None,
            starts: 0,
        };
        molt.spawn()?;
        Ok(molt)
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The user name molt's requests carry (empty when it runs as the administrator).
    pub fn username(&self) -> &str {
        &self.username
    }

    /// `--instance`: the Lease holder identity.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The User-Agent molt sends (`molt/<version> (<instance>)`) ends with this.
    pub fn user_agent_suffix(&self) -> String {
        format!("({})", self.instance)
    }

    fn spawn(&mut self) -> Result<()> {
        use std::io::Write;
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        self.starts += 1;
        writeln!(log, "==== molt start #{} (e2e harness)", self.starts)?;
        let err = log.try_clone()?;
        let child = Command::new(molt_binary()?)
            .arg("run")
            .args(&self.options.args)
            .arg("--plan-selector")
            .arg(
                self.options
                    .plan_selector
                    .clone()
                    .unwrap_or_else(|| format!("{TEST_LABEL}={}", self.test_id)),
            )
            .arg("--instance")
            .arg(&self.instance)
            // Several molts share the machine: each serves its endpoints on a free port.
            .arg("--http-addr")
            .arg("127.0.0.1:0")
            .env("KUBECONFIG", &self.kubeconfig)
            .env("MOLT_LOG", "info,molt=debug")
            .envs(
                self.options
                    .env
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .kill_on_drop(true)
            .spawn()
            .context("starting molt")?;
        self.child = Some(child);
        Ok(())
    }

    /// The process id of the running molt.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Stops molt the way a supervisor does: SIGTERM, then SIGKILL after 10 s.
    pub async fn stop(mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if let Some(pid) = child.id() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
            if tokio::time::timeout(Duration::from_secs(10), child.wait())
                .await
                .is_ok()
            {
                return Ok(());
            }
        }
        child.kill().await?;
        Ok(())
    }

    /// SIGKILLs molt (no chance to clean up) and reaps it.
    pub async fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.start_kill().ok();
            child.wait().await.context("waiting for the killed molt")?;
        }
        Ok(())
    }

    /// SIGKILLs molt (if it still runs) and starts it again.
    pub async fn restart(&mut self) -> Result<()> {
        self.kill().await?;
        self.spawn()
    }

    /// Sends `signal` (`STOP`, `CONT`, `TERM`) to the running molt.
    pub fn signal(&self, signal: &str) -> Result<()> {
        let pid = self
            .child
            .as_ref()
            .and_then(Child::id)
            .ok_or_else(|| anyhow!("molt is not running"))?;
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .context("running kill")?;
        if !status.success() {
            bail!("kill -{signal} {pid} failed: {status}");
        }
        Ok(())
    }

    /// Waits until molt exits by itself and returns how.
    pub async fn wait_exit(&mut self, within: Duration) -> Result<std::process::ExitStatus> {
        let child = self
            .child
            .as_mut()
            .ok_or_else(|| anyhow!("molt is not running"))?;
        let status = tokio::time::timeout(within, child.wait())
            .await
            .map_err(|_| {
                anyhow!(
                    "molt still runs after {within:?}; log: {}",
                    self.log.display()
                )
            })??;
        self.child = None;
        Ok(status)
    }

    /// Where the current process serves `/metrics` (read from its log).
    pub async fn http_addr(&self) -> Result<String> {
        let log = self.log.clone();
        let starts = self.starts;
        crate::eventually("molt to log where it serves /metrics", move || {
            let log = log.clone();
            async move {
                let text = std::fs::read_to_string(&log).map_err(|e| e.to_string())?;
                let marker = format!("==== molt start #{starts} ");
                let since = text.rfind(&marker).map_or("", |i| &text[i..]);
                Ok(since
                    .lines()
                    .filter(|l| l.contains("serving /metrics"))
                    .find_map(|l| {
                        let at = l.find("127.0.0.1:")?;
                        let port: String = l[at + 10..]
                            .chars()
                            .take_while(char::is_ascii_digit)
                            .collect();
                        (!port.is_empty()).then(|| format!("127.0.0.1:{port}"))
                    }))
            }
        })
        .await
    }

    /// Fails if molt exited by itself (it should run until killed).
    pub fn check_running(&mut self) -> Result<()> {
        if let Some(child) = self.child.as_mut()
            && let Some(status) = child.try_wait()?
        {
            bail!(
                "molt exited on its own ({status}); log: {}",
                self.log.display()
            );
        }
        Ok(())
    }
}

impl Drop for Molt {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            child.start_kill().ok();
            // Reap it so that no zombie outlives the test.
            for _ in 0..50 {
                if matches!(child.try_wait(), Ok(Some(_)) | Err(_)) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// A NodeUpdatePlan carrying the test's label. `spec` is the plan's spec as a
/// user would write it.
pub fn plan_object(name: &str, test_id: &str, spec: Value) -> Result<DynamicObject> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "molt.dev/v1alpha1",
        "kind": "NodeUpdatePlan",
        "metadata": { "name": name, "labels": { TEST_LABEL: test_id } },
        "spec": spec,
    }))?)
}

/// The plan's status as JSON (Null when the plan or its status is missing).
pub fn status(plan: &DynamicObject) -> &Value {
    plan.data.get("status").unwrap_or(&Value::Null)
}

/// `status.phase`, if any.
/// `status.summary.updated`: old nodes replaced so far.
pub fn updated(plan: &DynamicObject) -> u64 {
    status(plan)
        .pointer("/summary/updated")
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

pub fn phase(plan: &DynamicObject) -> Option<&str> {
    status(plan).get("phase").and_then(Value::as_str)
}

/// The condition of the given type, if present.
pub fn condition<'a>(plan: &'a DynamicObject, type_: &str) -> Option<&'a Value> {
    status(plan)
        .get("conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
}

/// Events about the plan (molt records them in `default`, the plan being
/// cluster-scoped; all namespaces are searched).
pub async fn plan_events(client: Client, plan: &str) -> Result<Vec<Event>> {
    let events: Api<Event> = Api::all(client);
    let list = events
        .list(&ListParams::default().fields(&format!(
            "involvedObject.name={plan},involvedObject.kind=NodeUpdatePlan"
        )))
        .await
        .context("listing the plan's Events")?;
    Ok(list.items)
}

/// A unique id for one test: its `molt.dev/test` label value.
pub fn test_id(prefix: &str) -> String {
    unique_name(prefix)
}

/// Removes, when dropped, the plans a test created (finalizers stripped, since
/// molt may be dead by then) and the nodes molt provisioned for them.
pub struct PlanCleanup {
    client: Client,
    plans: Vec<String>,
}

impl PlanCleanup {
    pub fn new(cluster: &Cluster) -> Self {
        Self {
            client: cluster.client(),
            plans: Vec::new(),
        }
    }

    /// Registers a plan (and the nodes labelled `molt.dev/plan=<name>`).
    pub fn track(&mut self, plan: &str) {
        self.plans.push(plan.to_string());
    }
}

async fn cleanup_plans(client: Client, names: Vec<String>) -> Result<()> {
    let api = plans(client.clone());
    let nodes: Api<Node> = Api::all(client);
    for name in &names {
        if api.get_opt(name).await?.is_some() {
            api.patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"finalizers": null}})),
            )
            .await
            .ok();
            api.delete(name, &DeleteParams::default()).await.ok();
        }
        let provisioned = nodes
            .list(&ListParams::default().labels(&format!("{}={name}", marks::PLAN_LABEL)))
            .await?;
        for node in provisioned.items {
            nodes
                .delete(&node.name_any(), &DeleteParams::default())
                .await
                .ok();
        }
    }
    Ok(())
}

impl Drop for PlanCleanup {
    fn drop(&mut self) {
        let client = self.client.clone();
        let names = std::mem::take(&mut self.plans);
        let handle = std::thread::spawn(move || -> Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(cleanup_plans(client, names))
        });
        match handle.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("e2e plan cleanup failed: {e:#}"),
            Err(_) => eprintln!("e2e plan cleanup thread panicked"),
        }
    }
}

/// Creates a node in `pool` (as [`crate::NodePoolSpec::node`] would) with the
/// control-plane role label and taint. molt must never touch it even though
/// the plan's selector matches it. Removed by [`NodesCleanup`].
pub async fn create_control_plane_node(cluster: &Cluster, pool: &str) -> Result<String> {
    let name = unique_name(&format!("{pool}-cp"));
    let mut node = crate::NodePoolSpec::new(pool, 1)
        .label(marks::CONTROL_PLANE_LABEL, "")
        .node(pool, &name)?;
    if let Some(spec) = node.spec.as_mut() {
        spec.taints = Some(vec![serde_json::from_value(json!({
            "key": marks::CONTROL_PLANE_LABEL, "effect": "NoSchedule"
        }))?]);
    }
    let nodes: Api<Node> = Api::all(cluster.client());
    nodes
        .create(&PostParams::default(), &node)
        .await
        .with_context(|| format!("creating node {name}"))?;
    wait_for(&nodes, &name, "the control-plane node to be Ready", |n| {
        n.is_some_and(crate::is_node_ready)
    })
    .await?;
    Ok(name)
}

/// Deletes the named nodes on drop.
pub struct NodesCleanup {
    client: Client,
    pub names: Vec<String>,
}

impl NodesCleanup {
    pub fn new(cluster: &Cluster) -> Self {
        Self {
            client: cluster.client(),
            names: Vec::new(),
        }
    }
}

impl Drop for NodesCleanup {
    fn drop(&mut self) {
        let client = self.client.clone();
        let names = std::mem::take(&mut self.names);
        let handle = std::thread::spawn(move || -> Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let nodes: Api<Node> = Api::all(client);
                for name in names {
                    nodes.delete(&name, &DeleteParams::default()).await.ok();
                }
                Ok(())
            })
        });
        if !matches!(handle.join(), Ok(Ok(()))) {
            eprintln!("e2e node cleanup failed");
        }
    }
}

/// The names in `status.batches[*].<field>` (e.g. `oldNodes`, `newNodes`).
pub fn batch_nodes(plan: &DynamicObject, field: &str) -> Vec<String> {
    status(plan)
        .get("batches")
        .and_then(Value::as_array)
        .map(|bs| {
            bs.iter()
                .filter_map(|b| b.get(field).and_then(Value::as_array))
                .flatten()
                .filter_map(|n| n.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Labels of a simple equality selector, as a `matchLabels` map.
pub fn match_labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
