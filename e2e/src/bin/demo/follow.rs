//! Following a plan live: a watch on the plan, one line per decision molt takes (a new batch, a
//! batch moving on, a blocker, a health verdict, a new status message) and, on a terminal, a
//! status line that keeps updating in place.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::runtime::{WatchStreamExt, watcher};

use crate::plan::{self, Blocker, Status, human, secs, span};
use molt_e2e::molt::Molt;

/// What was seen while following a plan.
pub struct Followed {
    pub name: String,
    pub status: Status,
    /// When the demo created the plan (local clock, milliseconds).
    pub created: Timestamp,
    /// When each phase was first observed through the watch.
    pub phase_seen: BTreeMap<String, Timestamp>,
    /// When each (batch index, batch phase) was first observed through the watch.
    pub batch_seen: BTreeMap<(u32, String), Timestamp>,
}

/// Whether to print as it goes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Live,
    Quiet,
}

/// Watches plan `name` until its phase is one of `until`; fails after `timeout`, or if molt exits.
pub async fn follow(
    client: &Client,
    name: &str,
    created: Timestamp,
    until: &[&str],
    timeout: Duration,
    molt: &mut Molt,
    output: Output,
) -> Result<Followed> {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut plans = watcher(plan::api(client), config)
        .default_backoff()
        .applied_objects()
        .boxed();
    let mut printer = Printer::new(created, output);
    let mut followed = Followed {
        name: name.to_string(),
        status: Status::default(),
        created,
        phase_seen: BTreeMap::new(),
        batch_seen: BTreeMap::new(),
    };
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            event = plans.next() => {
                let now = Timestamp::now();
                let object = match event {
                    Some(Ok(o)) => o,
                    Some(Err(e)) => {
                        printer.note(&format!("(watch interrupted, resuming: {e})"));
                        continue;
                    }
                    None => bail!("the watch on plan {name} ended"),
                };
                let status = Status::of(&object)?;
                if let Some(p) = &status.phase {
                    followed.phase_seen.entry(p.clone()).or_insert(now);
                }
                for b in &status.batches {
                    followed.batch_seen.entry((b.index, b.phase.clone())).or_insert(now);
                }
                printer.update(&status, now);
                let done = status.phase.as_deref().is_some_and(|p| until.contains(&p));
                followed.status = status;
                if done {
                    printer.clear_live();
                    return Ok(followed);
                }
            }
            _ = tick.tick() => {
                molt.check_running()?;
                printer.live(&followed.status, Timestamp::now());
            }
            _ = &mut deadline => {
                printer.clear_live();
                return Err(anyhow!(
                    "plan {name} did not reach {} within {}s; last phase {}, message: {}",
                    until.join(" or "),
                    timeout.as_secs(),
                    followed.status.phase(),
                    followed.status.message.as_deref().unwrap_or("-")
                ));
            }
        }
    }
}

/// Prints transitions, each once.
struct Printer {
    created: Timestamp,
    output: Output,
    tty: bool,
    live_shown: bool,
    phase: Option<String>,
    batches: BTreeMap<u32, String>,
    message: Option<String>,
    verdict: Option<String>,
    blockers: Vec<Blocker>,
}

impl Printer {
    fn new(created: Timestamp, output: Output) -> Self {
        Self {
            created,
            output,
            tty: std::io::stdout().is_terminal(),
            live_shown: false,
            phase: None,
            batches: BTreeMap::new(),
            message: None,
            verdict: None,
            blockers: Vec::new(),
        }
    }

    fn line(&mut self, at: Timestamp, text: &str) {
        if self.output == Output::Quiet {
            return;
        }
        self.clear_live();
        println!("  {:>6.1}s  {text}", span(self.created, at).max(0.0));
    }

    fn note(&mut self, text: &str) {
        self.line(Timestamp::now(), text);
    }

    fn clear_live(&mut self) {
        if self.live_shown {
            print!("\r\x1b[2K");
            let _ = std::io::stdout().flush();
            self.live_shown = false;
        }
    }

    /// One line per change since the last status.
    fn update(&mut self, s: &Status, now: Timestamp) {
        if s.phase != self.phase {
            self.phase = s.phase.clone();
            self.line(now, &format!("plan is {}", s.phase()));
        }
        let total = s.summary.batches;
        for b in &s.batches {
            let n = b.index + 1;
            let previous = self.batches.insert(b.index, b.phase.clone());
            if previous.is_none() {
                let old = b.old_nodes.join(", ");
                let new = b.new_nodes.join(", ");
                self.line(
                    now,
                    &format!("── batch {n}/{total}: replace {old} with {new}"),
                );
            }
            if previous.as_deref() == Some(b.phase.as_str()) {
                continue;
            }
            let detail = match b.phase.as_str() {
                "Provisioning" => "new nodes requested from the kwok provider".to_string(),
                "Draining" => format!(
                    "new nodes Ready after {}; old nodes cordoned, evicting their pods",
                    human(secs(b.provisioned_at.as_ref(), b.ready_at.as_ref()))
                ),
                "Soaking" => format!(
                    "drained in {}; watching the moved workloads (soak)",
                    human(secs(
                        b.drain_started_at.as_ref(),
                        b.drain_completed_at.as_ref()
                    ))
                ),
                "Completed" => format!(
                    "passed: healthy through the soak ({})",
                    human(secs(b.soak_started_at.as_ref(), b.completed_at.as_ref()))
                ),
                "RolledBack" => "rolled back".to_string(),
                other => other.to_string(),
            };
            self.line(now, &format!("   batch {n}: {} — {detail}", b.phase));
        }
        if s.blockers != self.blockers {
            self.blockers = s.blockers.clone();
            for b in &s.blockers {
                let text = format!("   blocked: {}", b.reason);
                self.line(now, &text);
            }
        }
        let verdict = s.health.as_ref().map(|h| h.verdict.clone());
        if verdict != self.verdict {
            self.verdict = verdict;
            if let Some(h) = &s.health {
                self.line(
                    now,
                    &format!(
                        "   health gate: {} ({} pods tracked on new nodes)",
                        h.verdict, h.tracked_pods
                    ),
                );
                for u in h.unhealthy.iter().take(3) {
                    let text = format!(
                        "     ✗ {}/{} on {}: {}",
                        u.namespace, u.pod, u.node, u.reason
                    );
                    self.line(now, &text);
                }
                if h.unhealthy_count > 3 {
                    let text = format!("     … {} unhealthy in all", h.unhealthy_count);
                    self.line(now, &text);
                }
            }
        }
        let message = s.message.as_deref().map(tidy);
        if message != self.message {
            self.message = message.clone();
            if let Some(m) = message {
                self.line(now, &format!("   » {m}"));
            }
        }
        self.live(s, now);
    }

    /// The in-place status line (terminals only).
    fn live(&mut self, s: &Status, now: Timestamp) {
        if self.output == Output::Quiet || !self.tty || s.phase.is_none() {
            return;
        }
        let mut text = format!(
            "  {:>6.1}s  [{}] {}/{} nodes updated",
            span(self.created, now).max(0.0),
            s.phase(),
            s.summary.updated,
            s.summary.nodes
        );
        if let Some(b) = s.batches.last() {
            text.push_str(&format!(
                " · batch {}/{} {}",
                b.index + 1,
                s.summary.batches,
                b.phase
            ));
            if b.phase == "Soaking"
                && let Some(start) = &b.soak_started_at
            {
                text.push_str(&format!(" {}", human(Some(span(start.0, now).max(0.0)))));
            }
        }
        if let Some(h) = &s.health {
            text.push_str(&format!(" · health {}", h.verdict));
        }
        print!("\r\x1b[2K\x1b[2m{text}\x1b[0m");
        let _ = std::io::stdout().flush();
        self.live_shown = true;
    }
}

/// A status message as shown: blockers (printed on their own lines) cut off, sub-second digits
/// of timestamps dropped, long lists shortened.
fn tidy(message: &str) -> String {
    let mut m = message
        .split("; blocked: ")
        .next()
        .unwrap_or(message)
        .to_string();
    // 2026-11-22T03:33:45.925711545Z -> 2026-11-22T03:33:45Z
    let mut out = String::with_capacity(m.len());
    let mut rest = m.as_str();
    while let Some(dot) = rest.find('.') {
        let after = &rest[dot + 1..];
        let digits = after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let fraction = rest[..dot].ends_with(|c: char| c.is_ascii_digit())
            && digits > 0
            && after[digits..].starts_with('Z');
        out.push_str(&rest[..dot]);
        if fraction {
            rest = &after[digits..];
        } else {
            out.push('.');
            rest = after;
        }
    }
    out.push_str(rest);
    m = out;
    const MAX: usize = 160;
    if m.chars().count() > MAX {
        m = m.chars().take(MAX).collect::<String>() + "…";
    }
    m
}
