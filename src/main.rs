//! The `molt` binary: parses the command line and hands over to the library.

use clap::Parser;
use molt::cli::{Cli, Command, RunArgs};
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Crd => molt::crd::yaml()
            .map_err(|e| format!("cannot render the CRD: {e}"))
            .and_then(|y| write_stdout(&y)),
        Command::Version => write_stdout(&format!("molt {}\n", env!("CARGO_PKG_VERSION"))),
        Command::Run(args) => run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("molt: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: RunArgs) -> Result<(), String> {
    molt::telemetry::init(args.log_format, &args.log)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async {
        let mut config = kube::Config::infer()
            .await
            .map_err(|e| format!("cannot find a cluster (kubeconfig or in-cluster config): {e}"))?;
        // A 429 to an eviction is an answer (a PDB refuses), not a hiccup to retry for minutes.
        config.default_retry = false;
        let instance = args
            .instance
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "molt".into());
        // Audit logs then tell the replicas apart.
        let agent = format!("molt/{} ({instance})", env!("CARGO_PKG_VERSION"));
        let agent = http::HeaderValue::from_str(&agent)
            .map_err(|e| format!("--instance {instance:?} cannot go in a User-Agent: {e}"))?;
        config.headers.push((http::header::USER_AGENT, agent));
        let election = args.leader_elect.then(|| molt::leader::ElectionConfig {
            namespace: args.leader_election_namespace,
            name: args.leader_election_name,
            identity: instance.clone(),
            duration: Duration::from_secs(args.leader_election_lease_duration),
            grace: Duration::from_secs(args.leader_election_renew_grace),
        });
        let options = molt::operator::Options {
            controller: molt::controller::RunConfig {
                concurrency: args.concurrency,
                reporter: instance,
                plan_selector: args.plan_selector,
            },
            http_addr: args.http_addr,
            election,
        };
        molt::operator::run(config, options)
            .await
            .map_err(|e| e.to_string())
    })
}

fn write_stdout(s: &str) -> Result<(), String> {
    std::io::stdout()
        .write_all(s.as_bytes())
        .map_err(|e| format!("cannot write to stdout: {e}"))
}
