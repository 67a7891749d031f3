//! The connection to the local cluster: starting it on demand (`e2e/cluster.sh ensure`) and
//! clients for the administrator and for ServiceAccounts.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};
use kube::config::{AuthInfo, KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::json;

use crate::paths;

/// The state directory `e2e/cluster.sh` uses.
pub fn cluster_dir() -> PathBuf {
    std::env::var_os("MOLT_CLUSTER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| paths::workspace().join("target").join("e2e-cluster"))
}

static ENSURED: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Makes sure the local cluster runs and returns its kubeconfig path.
///
/// With `MOLT_E2E_KUBECONFIG` set, that cluster is used as is. Otherwise
/// `e2e/cluster.sh ensure` runs once per process: it returns at once when the
/// cluster is up, and starts it (building what is missing) when it is not.
/// A cluster started this way keeps running; `make cluster-down` stops it.
pub fn ensure_cluster() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("MOLT_E2E_KUBECONFIG") {
        return Ok(PathBuf::from(path));
    }
    let mut ensured = ENSURED
        .lock()
        .map_err(|_| anyhow!("cluster start-up lock poisoned"))?;
    if let Some(path) = ensured.as_ref() {
        return Ok(path.clone());
    }
    run_cluster_script("ensure")?;
    let path = cluster_dir().join("kubeconfig");
    *ensured = Some(path.clone());
    Ok(path)
}

/// Runs `e2e/cluster.sh <command>` and fails when it does.
///
/// Cargo builds the package's binaries next to the test executables' deps/ directory; the
/// harness's controllers (fault mirror, kwok-machine) are handed over from there instead of
/// running cargo again from inside a test.
pub(crate) fn run_cluster_script(command: &str) -> Result<()> {
    let script = paths::workspace().join("e2e").join("cluster.sh");
    let mut run = std::process::Command::new("bash");
    run.arg(&script).arg(command);
    for (var, bin) in [
        ("MOLT_FAULT_MIRROR_BIN", "fault-mirror"),
        ("MOLT_KWOK_MACHINE_BIN", "kwok-machine"),
    ] {
        if let Some(path) = paths::profile_dir()
            .map(|d| d.join(bin))
            .filter(|p| p.is_file())
        {
            run.env(var, path);
        }
    }
    let status = run
        .status()
        .with_context(|| format!("running {}", script.display()))?;
    if !status.success() {
        bail!(
            "{} {command} failed ({status}); logs are in {}",
            script.display(),
            cluster_dir().join("logs").display()
        );
    }
    Ok(())
}

/// A connection to the local cluster as its administrator.
#[derive(Clone)]
pub struct Cluster {
    pub(crate) client: Client,
    pub(crate) config: Config,
    kubeconfig: PathBuf,
}

impl Cluster {
    /// Connects to the local cluster, starting it first if it is not running.
    pub async fn connect() -> Result<Self> {
        let kubeconfig = ensure_cluster()?;
        let kc = Kubeconfig::read_from(&kubeconfig)
            .with_context(|| format!("reading {}", kubeconfig.display()))?;
        let mut config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .context("loading the kubeconfig")?;
        // kube retries 429/503/504 answers by default, for up to minutes; a
        // refused eviction must reach the caller as the 429 it is.
        config.default_retry = false;
        let client = Client::try_from(config.clone()).context("building the client")?;
        client
            .apiserver_version()
            .await
            .context("the API server does not answer")?;
        Ok(Self {
            client,
            config,
            kubeconfig,
        })
    }

    /// An administrator client (group `system:masters`). It does not retry
    /// 429/503/504 answers, so tests see them as the API server sent them.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The kubeconfig written by `e2e/cluster.sh up`, e.g. for a molt process.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A client acting as a ServiceAccount, with a fresh token from the
    /// TokenRequest API: requests go through RBAC like an in-cluster pod's.
    pub async fn client_for_service_account(&self, namespace: &str, name: &str) -> Result<Client> {
        let token = service_account_token(&self.client(), namespace, name, 3600).await?;
        let mut config = self.config.clone();
        config.auth_info = serde_json::from_value::<AuthInfo>(json!({ "token": token }))?;
        Ok(Client::try_from(config)?)
    }
}

/// A fresh token for the ServiceAccount `namespace/name` from the TokenRequest API.
pub(crate) async fn service_account_token(
    client: &Client,
    namespace: &str,
    name: &str,
    expiration_seconds: i64,
) -> Result<String> {
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let request: TokenRequest = serde_json::from_value(json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": { "expirationSeconds": expiration_seconds }
    }))?;
    sas.create_token_request(name, &PostParams::default(), &request)
        .await
        .with_context(|| format!("requesting a token for {namespace}/{name}"))?
        .status
        .map(|s| s.token)
        .ok_or_else(|| anyhow!("the TokenRequest for {namespace}/{name} returned no token"))
}
