//! The `molt` command line.

use clap::{Parser, Subcommand, ValueEnum};

/// molt rolls node OS-image updates through a Kubernetes cluster, gated on workload health.
#[derive(Debug, Parser)]
#[command(name = "molt", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Reconcile NodeUpdatePlans (kubeconfig from KUBECONFIG or ~/.kube/config, else in-cluster).
    Run(RunArgs),
    /// Print the NodeUpdatePlan CustomResourceDefinition as YAML (the same as crds/).
    Crd,
    /// Print molt's version.
    Version,
}

/// Options of `molt run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Plans reconciled at the same time.
    #[arg(long, env = "MOLT_CONCURRENCY", default_value_t = 4)]
    pub concurrency: u16,
    /// Log format.
    #[arg(long, env = "MOLT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `molt=debug,kube=info`.
    #[arg(long, env = "MOLT_LOG", default_value = "info")]
    pub log: String,
    /// Only reconcile plans whose labels match this selector (e.g. `team=payments`), so several
    /// molt instances can share a cluster. Overlap between plans is then only detected within
    /// the plans this instance sees.
    #[arg(long, env = "MOLT_PLAN_SELECTOR")]
    pub plan_selector: Option<String>,
    /// Where `/metrics`, `/healthz` and `/readyz` are served (`127.0.0.1:0` picks a free port).
    #[arg(long, env = "MOLT_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: std::net::SocketAddr,
    /// Name of this instance: on Events, in its User-Agent and as the leader Lease holder
    /// (defaults to the host name, which is the pod name in a pod).
    #[arg(long, env = "POD_NAME")]
    pub instance: Option<String>,
    /// Run as one of several replicas: only the holder of a Lease reconciles and writes.
    #[arg(long, env = "MOLT_LEADER_ELECT")]
    pub leader_elect: bool,
    /// Namespace of the leader Lease (molt's own; in a pod, from the downward API).
    #[arg(long, env = "POD_NAMESPACE", default_value = "molt-system")]
    pub leader_election_namespace: String,
    /// Name of the leader Lease; replicas with the same Lease share one leader.
    #[arg(long, env = "MOLT_LEADER_ELECTION_NAME", default_value = "molt")]
    pub leader_election_name: String,
    /// Seconds a renewal holds the Lease: a failed leader is replaced after at most this long.
    #[arg(long, env = "MOLT_LEADER_ELECTION_LEASE_DURATION", default_value_t = 15, value_parser = clap::value_parser!(u64).range(2..=3600))]
    pub leader_election_lease_duration: u64,
    /// Seconds before expiry at which the leader renews; also the clock skew tolerated
    /// between replicas. Must be less than the lease duration.
    #[arg(long, env = "MOLT_LEADER_ELECTION_RENEW_GRACE", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub leader_election_renew_grace: u64,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}
