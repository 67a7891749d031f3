//! `make demo`: molt on the local control plane, in two stories.
//!
//! 1. A roll-forward: six worker nodes running a small shop (three Deployments with
//!    PodDisruptionBudgets and readiness probes, and a DaemonSet) are replaced two at a time by
//!    nodes on a new image (`config/samples/rollforward.yaml`), batch by batch, until the plan
//!    Succeeds.
//! 2. A bad image: the next plan (`config/samples/faulty-image.yaml`) brings up nodes whose pods
//!    never become Ready; molt's health gate notices, the plan rolls back, and every old node is
//!    schedulable again.
//!
//! It ends with a summary of how long each phase took, from the batches' timestamps in status.
//! The cluster keeps running afterwards (`make cluster-down` stops it); molt, which the demo
//! started, is stopped.
//!
//! `demo --measure [--runs N]` runs the roll-forward and then N bad-image plans quietly, and
//! prints the measurements recorded in docs/measurements.md.

mod follow;
mod measure;
mod plan;
mod setup;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use molt_e2e::Cluster;

use follow::{Followed, Output, follow};
use molt_e2e::molt::Molt;
use plan::{human, secs, span};
use setup::Tools;

/// Phases after which a plan does nothing more on its own.
const TERMINAL: [&str; 4] = ["Succeeded", "RolledBack", "Halted", "Failed"];
/// Workers in the demo pool.
const POOL_SIZE: usize = 6;
/// How long one story may take before the demo gives up.
const STORY_TIMEOUT: Duration = Duration::from_secs(600);

enum Mode {
    Demo,
    Measure { runs: usize },
}

fn parse_args() -> Result<Mode> {
    let mut mode = Mode::Demo;
    let mut runs = 5;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--measure" => mode = Mode::Measure { runs },
            "--runs" => {
                runs = args
                    .next()
                    .context("--runs needs a number")?
                    .parse()
                    .context("--runs needs a number")?;
            }
            "-h" | "--help" => {
                println!(
                    "usage: demo [--measure [--runs N]]\n\n\
                     Without options: the two-story demo (make demo).\n\
                     --measure: detection latency over N bad-image plans (default 5) and the\n\
                     roll-forward's phase durations (make demo-measure)."
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other} (try --help)"),
        }
    }
    if let Mode::Measure { .. } = mode {
        mode = Mode::Measure { runs };
    }
    Ok(mode)
}

#[tokio::main]
async fn main() -> ExitCode {
    let mode = match parse_args() {
        Ok(m) => m,
        Err(e) => {
            eprintln!("demo: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    // On Ctrl-C the story is dropped, and with it the molt process it started.
    let result = tokio::select! {
        r = run(mode) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\ndemo: {e:#}");
            eprintln!(
                "demo: the cluster keeps running; `make demo` starts the demo over, \
                 `make cluster-down` stops the cluster"
            );
            ExitCode::FAILURE
        }
    }
}

/// The environment both modes share: a cluster with the CRD, molt running, a clean slate.
struct Stage {
    client: Client,
    tools: Tools,
    molt: Molt,
}

async fn prepare() -> Result<Stage> {
    step("Local control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok)");
    let cluster = Cluster::connect().await?;
    let client = cluster.client();
    let tools = Tools::new(&cluster)?;
    say(&format!("KUBECONFIG={}", tools.kubeconfig.display()));
    setup::install_crd(&cluster).await?;
    say("CRD nodeupdateplans.molt.dev installed");
    let molt = setup::start_molt(&cluster).await?;
    say(&format!(
        "molt run started in the background (pid {}, log {})",
        molt.pid().unwrap_or_default(),
        molt.log_path().display()
    ));
    if setup::clean_up_earlier_demo(&client).await? {
        say("removed the plans, workloads and nodes of an earlier demo");
    }
    Ok(Stage {
        client,
        tools,
        molt,
    })
}

async fn build_shop(client: &Client) -> Result<()> {
    step(&format!(
        "A pool of {POOL_SIZE} worker nodes (label pool=workers) and the shop's workloads"
    ));
    let t = Instant::now();
    setup::create_pool(client, POOL_SIZE).await?;
    setup::create_workloads(client).await?;
    for (name, _, replicas, budget) in setup::DEPLOYMENTS {
        let budget = match budget {
            setup::Budget::MinAvailable(n) => format!("minAvailable {n}"),
            setup::Budget::MaxUnavailable(n) => format!("maxUnavailable {n}"),
        };
        say(&format!(
            "Deployment shop/{name}: {replicas} replicas, readiness probe, PDB {budget}"
        ));
    }
    say(&format!(
        "DaemonSet shop/{}: one pod per node",
        setup::DAEMONSET
    ));
    setup::wait_workloads_ready(client).await?;
    say(&format!(
        "all Ready after {:.1}s",
        t.elapsed().as_secs_f64()
    ));
    print_nodes(client).await
}

async fn run(mode: Mode) -> Result<()> {
    let started = Instant::now();
    let mut stage = prepare().await?;
    build_shop(&stage.client).await?;
    if let Mode::Measure { runs } = mode {
        let result = measure::run(&stage.client, &mut stage.molt, runs).await;
        stage.molt.stop().await?;
        return result;
    }

    // Story 1: roll forward.
    step(
        "Story 1 — roll the pool to a new image: kubectl apply -f config/samples/rollforward.yaml",
    );
    let forward = apply_sample(&mut stage, "rollforward.yaml").await?;
    let ok = forward.status.phase() == "Succeeded";
    if !ok {
        bail!(
            "the roll-forward ended {}: {}",
            forward.status.phase(),
            forward.status.message.as_deref().unwrap_or("-")
        );
    }
    setup::wait_workloads_ready(&stage.client).await?;
    let rows = setup::pool_nodes(&stage.client).await?;
    let target = forward.status.target_image.clone().unwrap_or_default();
    if rows.iter().any(|r| r.cordoned || r.image != target) {
        bail!("after the roll-forward, some pool nodes are cordoned or not on {target}");
    }
    say(&format!(
        "every pool node runs {target}; the old nodes are gone; all workloads Ready"
    ));
    print_nodes(&stage.client).await?;

    // Story 2: a bad image, rolled back.
    step("Story 2 — a bad image: kubectl apply -f config/samples/faulty-image.yaml");
    say(
        "its new nodes carry sim.molt.dev/fault=not-ready: pods start there but never become Ready",
    );
    let broken = apply_sample(&mut stage, "faulty-image.yaml").await?;
    if broken.status.phase() != "RolledBack" {
        bail!(
            "the bad image ended {} instead of RolledBack: {}",
            broken.status.phase(),
            broken.status.message.as_deref().unwrap_or("-")
        );
    }
    if let Some(f) = &broken.status.failure {
        say(&format!("why: {} — {}", f.reason, f.message));
    }
    setup::wait_workloads_ready(&stage.client).await?;
    let rows = setup::pool_nodes(&stage.client).await?;
    let schedulable = rows.iter().filter(|r| !r.cordoned && r.ready).count();
    if schedulable != POOL_SIZE || rows.len() != POOL_SIZE || rows.iter().any(|r| r.image != target)
    {
        bail!(
            "after the rollback: {schedulable} of {} pool nodes schedulable, expected {POOL_SIZE} on {target}",
            rows.len()
        );
    }
    say(&format!(
        "checked: all {schedulable} old nodes schedulable (none cordoned), the broken nodes removed, all workloads Ready"
    ));
    print_nodes(&stage.client).await?;

    summary(&stage.client, &forward, &broken, started).await?;
    stage.molt.stop().await?;
    println!(
        "\nmolt stopped; the cluster keeps running with the shop and both plans:\n\
         \x20 export KUBECONFIG={}\n\
         \x20 {} get nup,nodes\n\
         \x20 {} describe nup {}\n\
         Stop it with: make cluster-down",
        stage.tools.kubeconfig.display(),
        stage.tools.kubectl.display(),
        stage.tools.kubectl.display(),
        broken.name
    );
    Ok(())
}

/// Creates the plan in `config/samples/<file>` and follows it to a terminal phase.
async fn apply_sample(stage: &mut Stage, file: &str) -> Result<Followed> {
    let manifest = plan::load_sample(file)?;
    let name = manifest["metadata"]["name"]
        .as_str()
        .context("the sample has no name")?
        .to_string();
    let spec = &manifest["spec"];
    say(&format!(
        "plan {name}: target image {}, batchSize {}, soak {}, readyTimeout {}, onFailure {}",
        spec["target"]["image"].as_str().unwrap_or("-"),
        spec["strategy"]["batchSize"],
        spec["health"]["soak"].as_str().unwrap_or("5m"),
        spec["health"]["readyTimeout"].as_str().unwrap_or("5m"),
        spec["onFailure"].as_str().unwrap_or("Rollback"),
    ));
    let created = Timestamp::now();
    plan::create(&stage.client, manifest, &name).await?;
    println!();
    let followed = follow(
        &stage.client,
        &name,
        created,
        &TERMINAL,
        STORY_TIMEOUT,
        &mut stage.molt,
        Output::Live,
    )
    .await?;
    println!();
    Ok(followed)
}

async fn print_nodes(client: &Client) -> Result<()> {
    let rows = setup::pool_nodes(client).await?;
    println!();
    println!(
        "    {:<44} {:<28} {:<6} {:<12} SHOP PODS",
        "NODE", "IMAGE", "READY", "SCHEDULING"
    );
    for r in rows {
        println!(
            "    {:<44} {:<28} {:<6} {:<12} {}",
            r.name,
            r.image,
            if r.ready { "yes" } else { "no" },
            if r.cordoned {
                "cordoned"
            } else {
                "schedulable"
            },
            r.pods
        );
    }
    println!();
    Ok(())
}

/// Per-batch durations from status timestamps (1 s resolution).
pub fn batch_table(f: &Followed) -> Vec<String> {
    let mut out = vec![format!(
        "    {:<6} {:>10} {:>8} {:>8} {:>8} {:>8}",
        "batch", "provision", "drain", "settle", "soak", "total"
    )];
    for b in &f.status.batches {
        let total = secs(b.provisioned_at.as_ref(), b.completed_at.as_ref());
        let provision = secs(b.provisioned_at.as_ref(), b.ready_at.as_ref());
        let drain = secs(b.drain_started_at.as_ref(), b.drain_completed_at.as_ref());
        let settle = secs(b.drain_completed_at.as_ref(), b.soak_started_at.as_ref());
        let soak = secs(b.soak_started_at.as_ref(), b.completed_at.as_ref());
        out.push(format!(
            "    {:<6} {:>10} {:>8} {:>8} {:>8} {:>8}",
            b.index + 1,
            human(provision),
            human(drain),
            human(settle),
            human(soak),
            human(total)
        ));
    }
    out
}

async fn summary(
    client: &Client,
    forward: &Followed,
    broken: &Followed,
    started: Instant,
) -> Result<()> {
    step("Summary");
    let s = &forward.status;
    println!(
        "  1. {}: Succeeded — {} nodes replaced in {} batches, in {} (startedAt → completedAt)",
        forward.name,
        s.summary.nodes,
        s.batches.len(),
        human(secs(s.started_at.as_ref(), s.completed_at.as_ref()))
    );
    for line in batch_table(forward) {
        println!("{line}");
    }
    println!(
        "     provision: new nodes requested → Ready; drain: cordon → last pod evicted; settle: drained →\n\
         \x20    displaced workloads back to their ready count; soak: healthy without a break (30s asked)"
    );
    let b = &broken.status;
    println!(
        "  2. {}: RolledBack — in {} (startedAt → completedAt)",
        broken.name,
        human(secs(b.started_at.as_ref(), b.completed_at.as_ref()))
    );
    if let (Some(batch), Some(failure)) = (b.batches.first(), &b.failure) {
        let drain = match batch.drain_completed_at {
            Some(_) => format!(
                "old nodes drained in {}",
                human(secs(
                    batch.drain_started_at.as_ref(),
                    batch.drain_completed_at.as_ref()
                ))
            ),
            None => "the drain held by the PDBs (the moved pods never became Ready)".into(),
        };
        println!(
            "     new nodes Ready in {}, {drain};\n\
             \x20    the health gate failed {} after the drain began (readyTimeout 45s: the pods had that long\n\
             \x20    to become Ready); the rollback, from that decision to RolledBack, took {}",
            human(secs(batch.provisioned_at.as_ref(), batch.ready_at.as_ref())),
            human(secs(batch.drain_started_at.as_ref(), failure.at.as_ref())),
            human(secs(failure.at.as_ref(), b.completed_at.as_ref()))
        );
        if let (Some(seen), Some(at)) = (broken.phase_seen.get("RollingBack"), &failure.at) {
            println!(
                "     the demo saw RollingBack through its watch {:.1}s after failure.at (1 s resolution)",
                span(at.0, *seen)
            );
        }
    }
    let ready = setup::workload_readiness(client).await?;
    let ready: Vec<String> = ready
        .iter()
        .map(|(n, r, w)| format!("{n} {r}/{w}"))
        .collect();
    println!(
        "  cluster now: {POOL_SIZE} nodes, none cordoned; workloads Ready: {}",
        ready.join(", ")
    );
    println!(
        "  demo wall time: {}",
        human(Some(started.elapsed().as_secs_f64()))
    );
    Ok(())
}

fn step(title: &str) {
    println!("\n\x1b[1m▶ {title}\x1b[0m");
}

fn say(text: &str) {
    println!("  {text}");
}
