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

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use tokio::process::{Child, Command};

use crate::install::ensure_molt_identity;
use crate::{Cluster, paths};

// Helpers first written here and since moved next to their kind; re-exported so that
// `molt_e2e::molt::…` keeps working.
pub use crate::fixtures::{NodesCleanup, create_control_plane_node};
pub use crate::install::{config_manifest, grant_lease, install_crd, service_account_kubeconfig};
pub use crate::k8s::{
    annotation, cordon_by_hand, is_unschedulable, label, nodes_matching, set_unschedulable,
};
pub use crate::plan::{
    PlanCleanup, batch_nodes, condition, match_labels, phase, plan_events, plan_object,
    plan_resource, plans, status, test_id, updated,
};

/// Label that ties a plan to the test (and the molt process) that owns it.
pub const TEST_LABEL: &str = "molt.dev/test";
/// Namespace of molt's ServiceAccount.
pub const MOLT_NAMESPACE: &str = "molt-e2e-system";
/// Name of molt's ServiceAccount.
pub const MOLT_SERVICE_ACCOUNT: &str = "molt";
/// Field manager the harness applies with.
pub(crate) const MANAGER: &str = "molt-e2e";
/// The ClusterRole of config/rbac/role.yaml.
pub(crate) const MOLT_CLUSTER_ROLE: &str = "molt";

/// The user name molt's requests carry (in the audit log, for instance).
pub fn molt_username() -> String {
    format!("system:serviceaccount:{MOLT_NAMESPACE}:{MOLT_SERVICE_ACCOUNT}")
}

/// molt's node marks (the same strings as molt's `api::keys`, repeated here on
/// purpose: the tests judge molt by its documented contract, not by its code).
pub mod marks {
    /// Annotation: the full image reference a node molt provisioned runs.
    pub const IMAGE_ANNOTATION: &str = "molt.dev/image";
    /// Label: a hash of that image (FNV-1a 64, 16 hex digits).
    pub const IMAGE_HASH_LABEL: &str = "molt.dev/image-hash";
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
