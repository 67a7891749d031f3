//! Carry out one decision in the order that keeps both the cluster and the story right: write the
//! status, publish the Events, then execute the actions.
//!
//! Status first is intent before effect: a crash after the write repeats idempotent actions. The
//! Events come next because only the decision that makes a transition emits its Event: the next
//! decision already sees the new phase. Published after the actions, an Event would be lost
//! whenever an action of the same decision fails (a 409 on a cordon as a batch starts draining).
//! The order lives in [`carry_out`], over [`Effects`], so it is tested without a cluster.

use super::context::Context;
use super::error::Error;
use super::evict::EvictAnswer;
use super::execute::{Outcome, execute};
use super::observe::in_flight;
use crate::api::{NodeUpdatePlan, NodeUpdatePlanStatus, keys};
use crate::engine::{Action as Intent, Decision, Event, EventType};
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event as KubeEvent, EventType as KubeEventType};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use std::future::Future;
use std::time::Duration;
use tracing::{info, warn};

/// Longest one action may take before the reconcile gives up and retries.
pub const ACTION_TIMEOUT: Duration = Duration::from_secs(15);

/// Longest Event note sent; the API server refuses notes above 1 kB.
const NOTE_MAX: usize = 1000;

/// What carrying out a decision does outside the process.
pub trait Effects {
    /// The plan's name, for logs.
    fn plan(&self) -> String;
    /// Record the next status on the plan.
    fn write_status(
        &self,
        status: &NodeUpdatePlanStatus,
    ) -> impl Future<Output = Result<(), Error>> + Send;
    /// The status the plan now has (written or unchanged): pod watches and metrics follow it.
    fn recorded(&self, status: &NodeUpdatePlanStatus);
    /// Publish one Event on the plan.
    fn publish(&self, event: &Event) -> impl Future<Output = Result<(), kube::Error>> + Send;
    /// Carry out one action.
    fn execute(&self, action: &Intent) -> impl Future<Output = Result<Outcome, Error>> + Send;
}

/// Carry out `decision` for a plan whose recorded status is `current`.
///
/// A failed status write stops everything (nothing may happen that the status does not say). A
/// failed Event is logged and never stops the rollout. The first failed action ends the pass;
/// the next reconcile repeats the rest.
pub async fn carry_out<E: Effects + Sync>(
    fx: &E,
    current: Option<&NodeUpdatePlanStatus>,
    decision: &Decision,
) -> Result<(), Error> {
    if current != Some(&decision.status) {
        fx.write_status(&decision.status).await?;
    }
    fx.recorded(&decision.status);
    let plan = fx.plan();
    for event in &decision.events {
        info!(plan, reason = event.reason, "{}", event.note);
        if let Err(e) = fx.publish(event).await {
            // An Event lost is a pity, not a reason to stop the rollout.
            warn!(plan, reason = event.reason, error = %e, "cannot publish event");
        }
    }
    for action in &decision.actions {
        // A call that hangs must not hold the plan: give up, and the next reconcile repeats it.
        let outcome = bounded(ACTION_TIMEOUT, action, fx.execute(action)).await?;
        log(&plan, action, &outcome);
    }
    Ok(())
}

/// `work` for `action`, or [`Error::ActionTimeout`] once it has taken `limit`.
pub async fn bounded<T>(
    limit: Duration,
    action: &Intent,
    work: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    tokio::time::timeout(limit, work)
        .await
        .map_err(|_| Error::ActionTimeout {
            action: format!("{action:?}"),
            after: limit,
        })?
}

/// How an action went, in the log.
pub fn log(plan: &str, action: &Intent, outcome: &Outcome) {
    match outcome {
        Outcome::Done => info!(plan, ?action, "done"),
        Outcome::Skipped => info!(plan, ?action, "nothing to do"),
        Outcome::Evict(EvictAnswer::Evicted) => info!(plan, ?action, "evicted"),
        Outcome::Evict(EvictAnswer::Gone) => info!(plan, ?action, "pod already gone"),
        Outcome::Evict(EvictAnswer::Blocked(why)) => {
            info!(
                plan,
                ?action,
                "eviction refused by a PodDisruptionBudget: {why}"
            )
        }
        Outcome::Evict(EvictAnswer::NamespaceTerminating) => {
            info!(
                plan,
                ?action,
                "namespace being deleted; the pod goes with it"
            )
        }
        Outcome::Evict(EvictAnswer::Refused(why)) => {
            warn!(plan, ?action, "eviction refused: {why}")
        }
    }
}

/// The Kubernetes Event for one of the engine's.
pub fn kube_event(event: &Event) -> KubeEvent {
    KubeEvent {
        type_: match event.type_ {
            EventType::Normal => KubeEventType::Normal,
            EventType::Warning => KubeEventType::Warning,
        },
        reason: event.reason.to_string(),
        note: Some(truncate(&event.note, NOTE_MAX)),
        action: event.reason.to_string(),
        secondary: None,
    }
}

/// At most `max` bytes of `s`, cut at a character boundary, with an ellipsis if cut.
fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The effects on the real cluster, for one plan.
pub struct Shell<'a> {
    pub ctx: &'a Context,
    pub plan: &'a NodeUpdatePlan,
}

impl Effects for Shell<'_> {
    fn plan(&self) -> String {
        self.plan.name_any()
    }

    async fn write_status(&self, status: &NodeUpdatePlanStatus) -> Result<(), Error> {
        let api: Api<NodeUpdatePlan> = Api::all(self.ctx.client.clone());
        let patch = json!({
            "apiVersion": NodeUpdatePlan::api_version(&()),
            "kind": NodeUpdatePlan::kind(&()),
            "status": status,
        });
        api.patch_status(
            &self.plan.name_any(),
            &PatchParams::apply(keys::FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
        Ok(())
    }

    fn recorded(&self, status: &NodeUpdatePlanStatus) {
        let name = self.plan.name_any();
        self.ctx.pods.set(&name, &in_flight(Some(status)));
        self.ctx.metrics.observe_plan(&name, status);
    }

    async fn publish(&self, event: &Event) -> Result<(), kube::Error> {
        let reference = self.plan.object_ref(&());
        self.ctx
            .recorder
            .publish(&kube_event(event), &reference)
            .await
    }

    async fn execute(&self, action: &Intent) -> Result<Outcome, Error> {
        execute(self.ctx, self.plan, action).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Effects that record what happened, in order, and fail where told.
    #[derive(Default)]
    struct FakeShell {
        log: Mutex<Vec<String>>,
        fail_status: bool,
        fail_publish: bool,
        fail_action: Option<usize>,
    }

    impl FakeShell {
        fn note(&self, what: String) -> usize {
            let mut log = self.log.lock().unwrap();
            log.push(what);
            log.iter().filter(|l| l.starts_with("action")).count()
        }

        fn log(&self) -> Vec<String> {
            self.log.lock().unwrap().clone()
        }
    }

    impl Effects for FakeShell {
        fn plan(&self) -> String {
            "workers-v2".into()
        }

        async fn write_status(&self, status: &NodeUpdatePlanStatus) -> Result<(), Error> {
            self.note(format!("status {:?}", status.phase));
            if self.fail_status {
                return Err(Error::NotReady("status write refused".into()));
            }
            Ok(())
        }

        fn recorded(&self, _: &NodeUpdatePlanStatus) {
            self.note("recorded".into());
        }

        async fn publish(&self, event: &Event) -> Result<(), kube::Error> {
            self.note(format!("event {}", event.reason));
            if self.fail_publish {
                return Err(kube::Error::LinesCodecMaxLineLengthExceeded);
            }
            Ok(())
        }

        async fn execute(&self, action: &Intent) -> Result<Outcome, Error> {
            let n = self.note(format!("action {:?}", action.node()));
            if self.fail_action == Some(n) {
                return Err(Error::Conflict {
                    what: format!("node {:?}", action.node()),
                });
            }
            Ok(Outcome::Done)
        }
    }

    /// The decision that starts a batch's drain: two cordons and its Event.
    fn draining() -> Decision {
        let event = |reason| Event {
            type_: EventType::Normal,
            reason,
            note: "batch 0 drains old-0, old-1".into(),
        };
        Decision {
            actions: vec![
                Intent::Cordon {
                    node: "old-0".into(),
                },
                Intent::Cordon {
                    node: "old-1".into(),
                },
            ],
            events: vec![event("DrainStarted"), event("Other")],
            status: NodeUpdatePlanStatus {
                phase: Some(crate::api::Phase::Progressing),
                ..Default::default()
            },
            requeue_after: None,
        }
    }

    async fn run(fx: &FakeShell, current: Option<&NodeUpdatePlanStatus>) -> Result<(), Error> {
        carry_out(fx, current, &draining()).await
    }

    #[tokio::test]
    async fn a_hung_action_is_an_action_timeout_naming_the_action() {
        let cordon = Intent::Cordon {
            node: "old-0".into(),
        };
        // A zero limit on a call that never answers elapses on the first poll: no clock involved.
        let hung = bounded(
            Duration::ZERO,
            &cordon,
            std::future::pending::<Result<(), Error>>(),
        )
        .await;
        match hung {
            Err(Error::ActionTimeout { action, after }) => {
                assert!(action.contains("old-0"), "{action}");
                assert_eq!(after, Duration::ZERO);
            }
            other => panic!("expected an action timeout, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_action_that_answers_keeps_its_own_result() {
        let cordon = Intent::Cordon {
            node: "old-0".into(),
        };
        let failed = bounded(Duration::ZERO, &cordon, async {
            Err::<(), _>(Error::Conflict {
                what: "node old-0".into(),
            })
        })
        .await;
        assert!(matches!(failed, Err(Error::Conflict { .. })), "{failed:?}");
    }

    #[tokio::test]
    async fn status_then_events_then_actions() {
        let fx = FakeShell::default();
        run(&fx, None).await.unwrap();
        assert_eq!(
            fx.log(),
            [
                "status Some(Progressing)",
                "recorded",
                "event DrainStarted",
                "event Other",
                "action Some(\"old-0\")",
                "action Some(\"old-1\")",
            ]
        );
    }

    #[tokio::test]
    async fn a_failed_first_action_does_not_lose_the_events() {
        let fx = FakeShell {
            fail_action: Some(1),
            ..Default::default()
        };
        let result = run(&fx, None).await;
        assert!(matches!(result, Err(Error::Conflict { .. })), "{result:?}");
        let log = fx.log();
        assert!(
            log.contains(&"event DrainStarted".to_string()),
            "the Event of the transition is published although the cordon failed: {log:?}"
        );
        // The pass ends at the failure: the second cordon waits for the next reconcile.
        assert!(
            !log.contains(&"action Some(\"old-1\")".to_string()),
            "{log:?}"
        );
    }

    #[tokio::test]
    async fn a_failed_event_does_not_stop_the_actions_or_the_other_events() {
        let fx = FakeShell {
            fail_publish: true,
            ..Default::default()
        };
        run(&fx, None).await.unwrap();
        let log = fx.log();
        assert!(log.contains(&"event Other".to_string()), "{log:?}");
        assert!(
            log.contains(&"action Some(\"old-1\")".to_string()),
            "{log:?}"
        );
    }

    #[tokio::test]
    async fn nothing_happens_that_the_status_does_not_say() {
        let fx = FakeShell {
            fail_status: true,
            ..Default::default()
        };
        assert!(run(&fx, None).await.is_err());
        assert_eq!(fx.log(), ["status Some(Progressing)"]);
    }

    #[tokio::test]
    async fn an_unchanged_status_is_not_written_again_but_still_followed() {
        let fx = FakeShell::default();
        let same = draining().status;
        run(&fx, Some(&same)).await.unwrap();
        let log = fx.log();
        assert_eq!(log.first().map(String::as_str), Some("recorded"), "{log:?}");
    }

    #[test]
    fn a_long_note_is_cut_at_a_character_boundary() {
        let note = "é".repeat(NOTE_MAX); // two bytes each
        let e = kube_event(&Event {
            type_: EventType::Warning,
            reason: "HealthGateFailed",
            note,
        });
        let sent = e.note.unwrap_or_default();
        assert!(sent.ends_with('…'), "{sent}");
        assert_eq!(sent.trim_end_matches('…').len(), NOTE_MAX);
        assert_eq!(e.type_, KubeEventType::Warning);
        assert_eq!(truncate("short", NOTE_MAX), "short");
        // 1000 is not a boundary after one ASCII byte and 2-byte characters: cut back to 999.
        let odd = format!("a{}", "é".repeat(NOTE_MAX));
        assert_eq!(truncate(&odd, NOTE_MAX).trim_end_matches('…').len(), 999);
    }
}
