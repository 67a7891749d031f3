//! Prometheus metrics: what molt is doing, in numbers. Labels are bounded: plan names (few),
//! phases, outcomes and error categories (fixed sets).

use crate::api::{NodeUpdatePlanStatus, Phase};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

const PHASES: [Phase; 8] = [
    Phase::Pending,
    Phase::Progressing,
    Phase::Paused,
    Phase::Succeeded,
    Phase::Halted,
    Phase::RollingBack,
    Phase::RolledBack,
    Phase::Failed,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PlanLabels {
    pub plan: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    pub plan: String,
    pub phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CategoryLabels {
    pub category: String,
}

/// Every series molt exports.
pub struct Metrics {
    registry: Registry,
    /// 1 for the plan's current phase, 0 for the others.
    pub plan_phase: Family<PhaseLabels, Gauge>,
    /// Old nodes replaced, per plan.
    pub nodes_updated: Family<PlanLabels, Gauge>,
    /// Nodes in scope, per plan.
    pub nodes_total: Family<PlanLabels, Gauge>,
    /// 1-based batch in flight, per plan.
    pub current_batch: Family<PlanLabels, Gauge>,
    /// Pods blocking a drain right now (a PodDisruptionBudget, an unmanaged pod), per plan.
    pub blockers: Family<PlanLabels, Gauge>,
    /// When the plan's next maintenance window opens (Unix seconds) while it waits for one, else 0.
    pub next_window: Family<PlanLabels, Gauge>,
    /// 1 while this replica holds the leader Lease (or runs without election).
    pub leader: Gauge,
    /// Evictions by outcome: accepted, blocked (429), refused, gone.
    pub evictions: Family<OutcomeLabels, Counter>,
    /// Health gate verdicts seen in reconciles.
    pub gate_verdicts: Family<OutcomeLabels, Counter>,
    /// Reconciles that failed, by bounded error category.
    pub reconcile_errors: Family<CategoryLabels, Counter>,
    /// Seconds per reconcile.
    pub reconcile_duration: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("molt");
        let plan_phase = Family::<PhaseLabels, Gauge>::default();
        let nodes_updated = Family::<PlanLabels, Gauge>::default();
        let nodes_total = Family::<PlanLabels, Gauge>::default();
        let current_batch = Family::<PlanLabels, Gauge>::default();
        let blockers = Family::<PlanLabels, Gauge>::default();
        let next_window = Family::<PlanLabels, Gauge>::default();
        let leader = Gauge::default();
        let evictions = Family::<OutcomeLabels, Counter>::default();
        let gate_verdicts = Family::<OutcomeLabels, Counter>::default();
        let reconcile_errors = Family::<CategoryLabels, Counter>::default();
        let reconcile_duration = Histogram::new([
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ]);
        registry.register(
            "plan_phase",
            "1 for the plan's current phase",
            plan_phase.clone(),
        );
        registry.register(
            "plan_nodes_updated",
            "Old nodes replaced",
            nodes_updated.clone(),
        );
        registry.register("plan_nodes", "Nodes in scope", nodes_total.clone());
        registry.register(
            "plan_current_batch",
            "Batch in flight (1-based)",
            current_batch.clone(),
        );
        registry.register(
            "plan_blockers",
            "Pods blocking a drain right now",
            blockers.clone(),
        );
        registry.register(
            "plan_next_window_timestamp_seconds",
            "When the maintenance window the plan waits for opens (Unix time), 0 when not waiting",
            next_window.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease",
            leader.clone(),
        );
        registry.register("evictions", "Evictions by outcome", evictions.clone());
        registry.register(
            "health_gate_verdicts",
            "Health gate verdicts",
            gate_verdicts.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Failed reconciles by category",
            reconcile_errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time per reconcile",
            reconcile_duration.clone(),
        );
        Self {
            registry,
            plan_phase,
            nodes_updated,
            nodes_total,
            current_batch,
            blockers,
            next_window,
            leader,
            evictions,
            gate_verdicts,
            reconcile_errors,
            reconcile_duration,
        }
    }
}

impl Metrics {
    /// Record a plan's status after a reconcile.
    pub fn observe_plan(&self, plan: &str, status: &NodeUpdatePlanStatus) {
        let current = status.phase.unwrap_or(Phase::Pending);
        for phase in PHASES {
            let labels = PhaseLabels {
                plan: plan.to_string(),
                phase: phase.to_string(),
            };
            self.plan_phase
                .get_or_create(&labels)
                .set(i64::from(phase == current));
        }
        let p = PlanLabels {
            plan: plan.to_string(),
        };
        self.nodes_updated
            .get_or_create(&p)
            .set(i64::from(status.summary.updated));
        self.nodes_total
            .get_or_create(&p)
            .set(i64::from(status.summary.nodes));
        self.current_batch
            .get_or_create(&p)
            .set(i64::from(status.summary.current_batch));
        self.blockers
            .get_or_create(&p)
            .set(i64::try_from(status.blockers.len()).unwrap_or(i64::MAX));
        self.next_window.get_or_create(&p).set(
            status
                .next_window_at
                .as_ref()
                .map_or(0, |t| t.0.as_second()),
        );
        if let Some(h) = &status.health {
            self.gate_verdicts
                .get_or_create(&OutcomeLabels {
                    outcome: h.verdict.to_string(),
                })
                .inc();
        }
    }

    /// Forget a deleted plan's series.
    pub fn forget_plan(&self, plan: &str) {
        for phase in PHASES {
            self.plan_phase.remove(&PhaseLabels {
                plan: plan.to_string(),
                phase: phase.to_string(),
            });
        }
        let p = PlanLabels {
            plan: plan.to_string(),
        };
        self.nodes_updated.remove(&p);
        self.nodes_total.remove(&p);
        self.current_batch.remove(&p);
        self.blockers.remove(&p);
        self.next_window.remove(&p);
    }

    /// Count an eviction outcome.
    pub fn eviction(&self, outcome: &str) {
        self.evictions
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// Count a failed reconcile.
    pub fn error(&self, category: &str) {
        self.reconcile_errors
            .get_or_create(&CategoryLabels {
                category: category.to_string(),
            })
            .inc();
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{HealthStatus, Summary, Verdict};

    #[test]
    fn a_plan_shows_its_phase_progress_and_verdicts() {
        let m = Metrics::default();
        let status = NodeUpdatePlanStatus {
            phase: Some(Phase::RollingBack),
            summary: Summary {
                nodes: 6,
                updated: 2,
                current_batch: 2,
                ..Default::default()
            },
            health: Some(HealthStatus {
                verdict: Verdict::Unhealthy,
                ..Default::default()
            }),
            next_window_at: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                jiff::Timestamp::from_second(1_796_000_000).unwrap(),
            )),
            ..Default::default()
        };
        m.observe_plan("workers", &status);
        m.eviction("blocked");
        m.error("kube");
        let text = m.render().unwrap();
        assert!(
            text.contains(r#"molt_plan_phase{plan="workers",phase="RollingBack"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"molt_plan_phase{plan="workers",phase="Progressing"} 0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"molt_plan_nodes_updated{plan="workers"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"molt_plan_nodes{plan="workers"} 6"#),
            "{text}"
        );
        assert!(
            text.contains(r#"molt_health_gate_verdicts_total{outcome="Unhealthy"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"molt_evictions_total{outcome="blocked"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"molt_reconcile_errors_total{category="kube"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"molt_plan_next_window_timestamp_seconds{plan="workers"} 1796000000"#),
            "{text}"
        );
        m.forget_plan("workers");
        assert!(!m.render().unwrap().contains(r#"plan="workers""#));
    }
}
