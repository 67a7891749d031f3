//! `demo --measure`: the numbers in docs/measurements.md.
//!
//! (b) The demo's roll-forward (`config/samples/rollforward.yaml` over the six-node shop): each
//!     batch's provision, drain, settle and soak durations against the rollout's wall time, both
//!     from the batch timestamps in status (1 s resolution) and as the demo's watch saw them.
//! (a) Detection latency, over N runs of `config/samples/faulty-image.yaml` (with a shorter
//!     readyTimeout): from the moment the fault is visible in the API — the earliest
//!     `pod.status.startTime + readyTimeout` among the not-Ready pods on the plan's new nodes,
//!     which is when a pod becomes unhealthy by the rule — to the plan turning `RollingBack`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use molt_e2e::is_pod_ready;
use serde_json::Value;

use crate::follow::{Followed, Output, follow};
use crate::plan::{self, human, secs, span};
use crate::setup;
use crate::{STORY_TIMEOUT, TERMINAL, batch_table};
use molt_e2e::molt::Molt;

/// readyTimeout of the detection runs (the sample's 45 s would only make each run longer).
const READY_TIMEOUT_SECS: i64 = 15;

pub async fn run(client: &Client, molt: &mut Molt, runs: usize) -> Result<()> {
    forward(client, molt).await?;
    detection(client, molt, runs).await
}

async fn forward(client: &Client, molt: &mut Molt) -> Result<()> {
    crate::step("(b) roll-forward: config/samples/rollforward.yaml over the shop's 6 nodes");
    let manifest = plan::load_sample("rollforward.yaml")?;
    let name = name_of(&manifest)?;
    let created = Timestamp::now();
    plan::create(client, manifest, &name).await?;
    let f = follow(
        client,
        &name,
        created,
        &TERMINAL,
        STORY_TIMEOUT,
        molt,
        Output::Quiet,
    )
    .await?;
    if f.status.phase() != "Succeeded" {
        bail!("the roll-forward ended {}", f.status.phase());
    }
    println!("  from status timestamps (1 s resolution):");
    for line in batch_table(&f) {
        println!("{line}");
    }
    println!("  as the demo's watch saw the batch phases change (±0.1 s):");
    println!(
        "    {:<6} {:>10} {:>8} {:>8} {:>8}",
        "batch", "provision", "drain", "soak", "total"
    );
    let seen = |i: u32, p: &str| f.batch_seen.get(&(i, p.to_string())).copied();
    let mut sum = [0.0f64; 4];
    for b in &f.status.batches {
        let i = b.index;
        let d = |a: Option<Timestamp>, z: Option<Timestamp>| a.zip(z).map(|(a, z)| span(a, z));
        let row = [
            d(seen(i, "Provisioning"), seen(i, "Draining")),
            d(seen(i, "Draining"), seen(i, "Soaking")),
            d(seen(i, "Soaking"), seen(i, "Completed")),
            d(seen(i, "Provisioning"), seen(i, "Completed")),
        ];
        for (s, v) in sum.iter_mut().zip(row) {
            *s += v.unwrap_or(0.0);
        }
        let cell = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}s"));
        println!(
            "    {:<6} {:>10} {:>8} {:>8} {:>8}",
            i + 1,
            cell(row[0]),
            cell(row[1]),
            cell(row[2]),
            cell(row[3])
        );
    }
    let wall = f.phase_seen.get("Succeeded").map(|t| span(created, *t));
    println!(
        "    {:<6} {:>10} {:>8} {:>8} {:>8}",
        "sum",
        format!("{:.1}s", sum[0]),
        format!("{:.1}s", sum[1]),
        format!("{:.1}s", sum[2]),
        format!("{:.1}s", sum[3])
    );
    println!(
        "  wall time: plan created → Succeeded seen {}; startedAt → completedAt {}",
        wall.map_or("-".into(), |w| format!("{w:.1}s")),
        human(secs(
            f.status.started_at.as_ref(),
            f.status.completed_at.as_ref()
        ))
    );
    if let (Some(w), Some(last)) = (
        wall,
        f.status
            .batches
            .last()
            .and_then(|b| seen(b.index, "Completed")),
    ) {
        println!(
            "  after the last batch: removing the old nodes and Succeeded took {:.1}s",
            w - span(created, last)
        );
    }
    Ok(())
}

/// What the pod watch saw of one pod.
#[derive(Clone, Debug)]
struct PodSeen {
    key: String,
    node: String,
    start: Option<Timestamp>,
    ever_ready: bool,
}

/// Records every pod's node, startTime and whether it was ever Ready, until dropped.
struct PodRecorder {
    seen: Arc<Mutex<BTreeMap<String, PodSeen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl PodRecorder {
    fn start(client: &Client) -> Self {
        let seen: Arc<Mutex<BTreeMap<String, PodSeen>>> = Arc::default();
        let pods: Api<Pod> = Api::all(client.clone());
        let sink = seen.clone();
        let task = tokio::spawn(async move {
            let mut stream = watcher(pods, watcher::Config::default())
                .default_backoff()
                .applied_objects()
                .boxed();
            while let Some(event) = stream.next().await {
                let Ok(pod) = event else { continue };
                let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
                    continue;
                };
                let uid = pod.uid().unwrap_or_default();
                let start = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.start_time.as_ref())
                    .map(|t| t.0);
                let ready = is_pod_ready(&pod);
                if let Ok(mut seen) = sink.lock() {
                    let entry = seen.entry(uid).or_insert_with(|| PodSeen {
                        key: format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any()),
                        node: node.clone(),
                        start: None,
                        ever_ready: false,
                    });
                    entry.start = entry.start.or(start);
                    entry.ever_ready |= ready;
                }
            }
        });
        Self { seen, task }
    }

    fn snapshot(&self) -> Vec<PodSeen> {
        self.seen
            .lock()
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default()
    }
}

impl Drop for PodRecorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Detection {
    /// Fault visible: earliest startTime + readyTimeout of a never-Ready pod on a new node.
    visible: Timestamp,
    pod: String,
    /// RollingBack first seen through the watch (local clock).
    seen: Timestamp,
    /// Degraded condition's lastTransitionTime and failure.at (1 s resolution).
    degraded: Option<Timestamp>,
    failure_at: Option<Timestamp>,
    /// Detection → RolledBack seen.
    rollback: Option<f64>,
}

async fn detection(client: &Client, molt: &mut Molt, runs: usize) -> Result<()> {
    crate::step(&format!(
        "(a) detection latency: {runs} runs of config/samples/faulty-image.yaml with readyTimeout {READY_TIMEOUT_SECS}s"
    ));
    let recorder = PodRecorder::start(client);
    let mut results = Vec::new();
    for run in 1..=runs {
        let mut manifest = plan::load_sample("faulty-image.yaml")?;
        let name = format!("{}-m{run}", name_of(&manifest)?);
        plan::set_spec(
            &mut manifest,
            "health",
            "readyTimeout",
            Value::String(format!("{READY_TIMEOUT_SECS}s")),
        )?;
        let created = Timestamp::now();
        plan::create(client, manifest, &name).await?;
        let f = follow(
            client,
            &name,
            created,
            &TERMINAL,
            STORY_TIMEOUT,
            molt,
            Output::Quiet,
        )
        .await?;
        let d = detection_of(&f, &recorder.snapshot())?;
        println!(
            "  run {run}: fault visible {} ({}), RollingBack seen {:+.3}s after; Degraded.lastTransitionTime {}, failure.at {}; RolledBack {} later",
            d.visible.strftime("%H:%M:%S%.3f"),
            d.pod,
            span(d.visible, d.seen),
            d.degraded
                .map_or("-".into(), |t| format!("{:+.0}s", span(d.visible, t))),
            d.failure_at
                .map_or("-".into(), |t| format!("{:+.0}s", span(d.visible, t))),
            d.rollback.map_or("-".into(), |r| format!("{r:.1}s")),
        );
        results.push(d);
        plan::delete_all(client, Duration::from_secs(60)).await?;
        setup::wait_workloads_ready(client).await?;
    }
    let mut latencies: Vec<f64> = results.iter().map(|d| span(d.visible, d.seen)).collect();
    latencies.sort_by(f64::total_cmp);
    let mut rollbacks: Vec<f64> = results.iter().filter_map(|d| d.rollback).collect();
    rollbacks.sort_by(f64::total_cmp);
    println!(
        "  detection latency (fault visible → RollingBack seen), {} runs: min {:.3}s, median {:.3}s, max {:.3}s",
        latencies.len(),
        latencies.first().copied().unwrap_or_default(),
        median(&latencies),
        latencies.last().copied().unwrap_or_default()
    );
    println!(
        "  rollback (RollingBack seen → RolledBack seen): min {:.1}s, median {:.1}s, max {:.1}s",
        rollbacks.first().copied().unwrap_or_default(),
        median(&rollbacks),
        rollbacks.last().copied().unwrap_or_default()
    );
    Ok(())
}

fn detection_of(f: &Followed, pods: &[PodSeen]) -> Result<Detection> {
    let new_nodes: Vec<&String> = f.status.batches.iter().flat_map(|b| &b.new_nodes).collect();
    let timeout = SignedDuration::from_secs(READY_TIMEOUT_SECS);
    let (visible, pod) = pods
        .iter()
        .filter(|p| new_nodes.contains(&&p.node) && !p.ever_ready)
        .filter_map(|p| Some((p.start?.checked_add(timeout).ok()?, p.key.clone())))
        .min()
        .ok_or_else(|| {
            anyhow!(
                "{}: no never-Ready pod with a startTime on its new nodes",
                f.name
            )
        })?;
    let seen = *f
        .phase_seen
        .get("RollingBack")
        .or_else(|| f.phase_seen.get("Halted"))
        .ok_or_else(|| anyhow!("{}: RollingBack was never observed", f.name))?;
    Ok(Detection {
        visible,
        pod,
        seen,
        degraded: f
            .status
            .condition("Degraded")
            .and_then(|c| c.last_transition_time.as_ref())
            .map(|t| t.0),
        failure_at: f
            .status
            .failure
            .as_ref()
            .and_then(|x| x.at.as_ref())
            .map(|t| t.0),
        rollback: f.phase_seen.get("RolledBack").map(|t| span(seen, *t)),
    })
}

fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn name_of(manifest: &Value) -> Result<String> {
    manifest["metadata"]["name"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("the sample has no metadata.name"))
}
