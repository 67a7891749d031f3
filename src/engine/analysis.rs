//! Metrics analysis of the batch in soak (`spec.analysis`), decided from status and the
//! measurements the shell took.
//!
//! The shell asks [`due`] which queries to run (from status alone, so a restarted controller
//! measures on the same schedule), runs them and hands the answers back in
//! [`Observed::measurements`](super::Observed). The engine folds each answer into the batch's
//! `analysis` status exactly once, identified by its time, and judges the counts: a failure fails
//! the gate, an error streak or an inconclusive answer makes the soak wait, and the soak passes
//! only once every metric has had a successful measurement and its last one did not fail.

use super::Step;
use super::forward::{Next, Stop};
use crate::api::analysis::{AnalysisSpec, MeasurementPhase, MetricSpec, MetricStatus};
use crate::api::{BatchPhase, BatchStatus, NodeUpdatePlan, Phase};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// The placeholder a query may use for the batch's new nodes.
pub const NODES_PLACEHOLDER: &str = "{{nodes}}";

/// One answer to one query, as the shell got it.
#[derive(Clone, Debug, PartialEq)]
pub struct Measurement {
    /// The batch (`status.batches[].index`) the query was run for.
    pub batch: u32,
    /// The metric (`spec.analysis.metrics[].name`).
    pub metric: String,
    /// When it was taken; a measurement not later than the recorded one is not counted again.
    pub at: Timestamp,
    /// The sample values, or why there are none.
    pub result: Result<Vec<f64>, String>,
}

/// A query the shell should run now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Due {
    pub batch: u32,
    pub metric: String,
    /// The query with `{{nodes}}` expanded.
    pub query: String,
}

/// Where the analysis of a batch stands.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Verdict {
    /// No analysis configured.
    Off,
    /// Every metric had a successful measurement and none's last one failed.
    Successful,
    /// Not decided yet (no successful measurement, or the last one failed within the limit).
    Waiting(String),
    /// A metric cannot be decided: errors beyond the limit, or an inconclusive answer.
    Inconclusive(String),
    /// A metric failed more often than its failureLimit.
    Failed(String),
}

/// The batch whose soak is being analysed: the one in flight, if it is soaking.
fn soaking_batch(plan: &NodeUpdatePlan) -> Option<&BatchStatus> {
    let status = plan.status.as_ref()?;
    if !status.phase.is_some_and(Phase::forward) {
        return None;
    }
    let b = status
        .batches
        .iter()
        .rfind(|b| b.phase != BatchPhase::Completed)?;
    (b.phase == BatchPhase::Soaking).then_some(b)
}

/// The queries to run at `now` for `plan`: every metric of the soaking batch whose interval has
/// passed since its last measurement (or that has none).
pub fn due(plan: &NodeUpdatePlan, now: Timestamp) -> Vec<Due> {
    let (Some(spec), Some(b)) = (&plan.spec.analysis, soaking_batch(plan)) else {
        return vec![];
    };
    spec.metrics
        .iter()
        .filter(|m| next_due(m, b).is_none_or(|at| now >= at))
        .map(|m| Due {
            batch: b.index,
            metric: m.name.clone(),
            query: expand(&m.query, &new_node_names(b)),
        })
        .collect()
}

/// When `metric` is next due in batch `b` (`None`: now, it was never measured).
fn next_due(metric: &MetricSpec, b: &BatchStatus) -> Option<Timestamp> {
    let last = b.analysis.iter().find(|s| s.name == metric.name)?;
    let interval: std::time::Duration = metric.interval.into();
    Some(super::health::add(last.last_measured_at.0, interval))
}

/// The names of the nodes filling the batch's slots, as recorded in status.
pub fn new_node_names(b: &BatchStatus) -> Vec<String> {
    b.new_nodes
        .iter()
        .map(|slot| b.slot_nodes.get(slot).unwrap_or(slot).clone())
        .collect()
}

/// `query` with every `{{nodes}}` replaced by an anchored alternation of `nodes`, regex-escaped
/// and then escaped for a double-quoted PromQL string.
pub fn expand(query: &str, nodes: &[String]) -> String {
    if !query.contains(NODES_PLACEHOLDER) {
        return query.to_string();
    }
    let alternatives: Vec<String> = nodes.iter().map(|n| regex_escape(n)).collect();
    let regex = format!("^(?:{})$", alternatives.join("|"));
    let quoted = regex.replace('\\', "\\\\").replace('"', "\\\"");
    query.replace(NODES_PLACEHOLDER, &quoted)
}

fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if r"\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// What one answer comes to for `metric`: its phase, the deciding value and the words.
fn judge(
    metric: &MetricSpec,
    result: &Result<Vec<f64>, String>,
) -> (MeasurementPhase, Option<f64>, String) {
    let samples = match result {
        Err(e) => return (MeasurementPhase::Error, None, e.clone()),
        Ok(s) if s.is_empty() => {
            return (
                MeasurementPhase::Inconclusive,
                None,
                "the query returned no data".into(),
            );
        }
        Ok(s) => s,
    };
    if let Some(v) = samples.iter().find(|v| v.is_nan()) {
        return (
            MeasurementPhase::Inconclusive,
            Some(*v),
            "the query returned NaN".into(),
        );
    }
    if let Some(fc) = &metric.failure_condition
        && let Some(v) = samples.iter().find(|v| fc.holds(**v))
    {
        return (
            MeasurementPhase::Failed,
            Some(*v),
            format!("value {v} meets the failure condition {fc}"),
        );
    }
    match &metric.success_condition {
        Some(sc) => match samples.iter().find(|v| !sc.holds(**v)) {
            None => (
                MeasurementPhase::Successful,
                samples.first().copied(),
                format!("meets the success condition {sc}"),
            ),
            Some(v) if metric.failure_condition.is_some() => (
                MeasurementPhase::Inconclusive,
                Some(*v),
                format!(
                    "value {v} meets neither the success condition {sc} nor the failure condition"
                ),
            ),
            Some(v) => (
                MeasurementPhase::Failed,
                Some(*v),
                format!("value {v} does not meet the success condition {sc}"),
            ),
        },
        None => (
            MeasurementPhase::Successful,
            samples.first().copied(),
            "the failure condition holds for no sample".into(),
        ),
    }
}

/// Count one measurement into `s`.
fn record(s: &mut MetricStatus, metric: &MetricSpec, m: &Measurement) {
    let (phase, value, message) = judge(metric, &m.result);
    s.phase = phase;
    s.last_measured_at = Time(m.at);
    s.message = message;
    match phase {
        MeasurementPhase::Successful => s.successful += 1,
        MeasurementPhase::Failed => s.failed += 1,
        MeasurementPhase::Inconclusive => s.inconclusive += 1,
        MeasurementPhase::Error => s.error += 1,
    }
    if phase == MeasurementPhase::Error {
        s.consecutive_errors += 1;
    } else {
        s.consecutive_errors = 0;
        s.last_value = value.map(|v| v.to_string());
    }
}

/// Fold the measurements of batch `b` into its status (each once) and judge the analysis.
fn fold(spec: &AnalysisSpec, b: &mut BatchStatus, measurements: &[Measurement]) {
    b.analysis
        .retain(|s| spec.metrics.iter().any(|m| m.name == s.name));
    for m in measurements.iter().filter(|m| m.batch == b.index) {
        let Some(metric) = spec.metrics.iter().find(|x| x.name == m.metric) else {
            continue;
        };
        let k = match b.analysis.iter().position(|s| s.name == m.metric) {
            Some(k) if m.at <= b.analysis[k].last_measured_at.0 => continue,
            Some(k) => k,
            None => {
                b.analysis.push(MetricStatus {
                    name: metric.name.clone(),
                    phase: MeasurementPhase::Inconclusive,
                    successful: 0,
                    failed: 0,
                    inconclusive: 0,
                    error: 0,
                    consecutive_errors: 0,
                    last_value: None,
                    last_measured_at: Time(m.at),
                    message: String::new(),
                });
                b.analysis.len() - 1
            }
        };
        record(&mut b.analysis[k], metric, m);
    }
}

/// The verdict over the recorded counts of batch `b`.
fn judge_batch(spec: &AnalysisSpec, b: &BatchStatus, label: &str) -> Verdict {
    let mut inconclusive = None;
    let mut waiting = None;
    for metric in &spec.metrics {
        let name = &metric.name;
        let Some(s) = b.analysis.iter().find(|s| s.name == *name) else {
            waiting.get_or_insert_with(|| format!("metric {name}: first measurement due"));
            continue;
        };
        if s.failed > metric.failure_limit.max(0) as u32 {
            return Verdict::Failed(format!(
                "metric {name} failed in {label}: {} ({} failed measurement(s), failureLimit {})",
                s.message, s.failed, metric.failure_limit
            ));
        }
        if s.consecutive_errors > metric.consecutive_error_limit.max(0) as u32 {
            inconclusive.get_or_insert_with(|| {
                format!(
                    "metric {name} cannot be measured: {} errors in a row (consecutiveErrorLimit {}); last: {}",
                    s.consecutive_errors, metric.consecutive_error_limit, s.message
                )
            });
        } else if s.phase == MeasurementPhase::Inconclusive {
            inconclusive
                .get_or_insert_with(|| format!("metric {name} is inconclusive: {}", s.message));
        } else if s.successful == 0 || s.phase == MeasurementPhase::Failed {
            waiting.get_or_insert_with(|| {
                format!(
                    "metric {name}: waiting for a successful measurement (last: {})",
                    s.message
                )
            });
        }
    }
    match (inconclusive, waiting) {
        (Some(m), _) => Verdict::Inconclusive(m),
        (None, Some(m)) => Verdict::Waiting(m),
        (None, None) => Verdict::Successful,
    }
}

impl Step<'_> {
    /// The metrics analysis of soaking batch `i`: the new measurements counted into status, the
    /// next one scheduled, and the verdict.
    pub(crate) fn analyse(&mut self, i: usize) -> Verdict {
        let Some(spec) = &self.plan.spec.analysis else {
            return Verdict::Off;
        };
        let label = self.batch_label(i);
        let b = &mut self.status.batches[i];
        fold(spec, b, &self.observed.measurements);
        let next = spec
            .metrics
            .iter()
            .map(|m| next_due(m, b).unwrap_or(self.now))
            .min();
        let verdict = judge_batch(spec, b, &label);
        if let Some(at) = next {
            self.requeue_at(at);
        }
        verdict
    }
}

impl Step<'_> {
    /// The soak of batch `i` cannot go on as usual: a failed metric stops the plan
    /// (`onFailure`), an undecidable one makes the soak wait and start again once it is decided.
    pub(crate) fn metrics_hold(
        &mut self,
        settings: &super::settings::Settings,
        i: usize,
        verdict: &Verdict,
    ) -> Option<Next> {
        match verdict {
            Verdict::Failed(why) => Some(Next::Stop(Stop {
                policy: settings.on_failure,
                reason: crate::api::condition::reasons::METRIC_FAILED,
                message: why.clone(),
            })),
            Verdict::Inconclusive(why) => {
                let label = self.batch_label(i);
                self.status.batches[i].soak_started_at = None;
                self.say(
                    crate::api::condition::reasons::METRIC_INCONCLUSIVE,
                    format!("{label}: waiting, neither passing nor rolling back: {why}"),
                );
                Some(Next::Wait)
            }
            _ => None,
        }
    }
}
