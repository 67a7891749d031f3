//! One reconcile: finalizer → observe → decide → record the status → carry out the actions.
//!
//! Level-triggered: nothing here depends on why the reconcile ran. The status is written before
//! any action, so a crash after the write repeats idempotent actions and a crash before it repeats
//! the whole decision.

use super::context::Context;
use super::error::Error;
use super::evict::EvictAnswer;
use super::execute::{Outcome, execute};
use super::observe::{in_flight, snapshot};
use crate::api::{NodeUpdatePlan, keys};
use crate::engine::{self, Action as Intent, RESYNC};
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event, finalizer};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// Longest one action may take before the reconcile gives up and retries.
const ACTION_TIMEOUT: Duration = Duration::from_secs(15);

/// Reconcile one plan.
#[tracing::instrument(skip_all, fields(plan = %plan.name_any()))]
pub async fn reconcile(plan: Arc<NodeUpdatePlan>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let result = reconcile_inner(plan, &ctx).await;
    ctx.metrics
        .reconcile_duration
        .observe(started.elapsed().as_secs_f64());
    result
}

async fn reconcile_inner(plan: Arc<NodeUpdatePlan>, ctx: &Arc<Context>) -> Result<Action, Error> {
    ctx.stores.ready().await.map_err(Error::NotReady)?;
    let api: Api<NodeUpdatePlan> = Api::all(ctx.client.clone());
    finalizer(&api, keys::FINALIZER, plan, |event| async {
        match event {
            Event::Apply(plan) => apply(&plan, ctx).await,
            Event::Cleanup(plan) => cleanup(&plan, ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

async fn apply(cached: &NodeUpdatePlan, ctx: &Context) -> Result<Action, Error> {
    let name = cached.name_any();
    // Decide on the status as last written, not on a cache that may not have caught up with
    // the previous reconcile's write.
    let api: Api<NodeUpdatePlan> = Api::all(ctx.client.clone());
    let Some(fresh) = api.get_opt(&name).await? else {
        return Ok(Action::await_change());
    };
    let plan = &fresh;
    ctx.pods.set(&name, &in_flight(plan.status.as_ref()));
    let observed = snapshot(ctx, plan);
    let decision = engine::decide(plan, &observed, jiff::Timestamp::now());

    // Intent before effect.
    if plan.status.as_ref() != Some(&decision.status) {
        write_status(ctx, plan, &decision.status).await?;
    }
    ctx.pods.set(&name, &in_flight(Some(&decision.status)));
    ctx.metrics.observe_plan(&name, &decision.status);

    for action in &decision.actions {
        // A call that hangs must not hold the plan: give up, and the next reconcile repeats it.
        let outcome = bounded(ACTION_TIMEOUT, action, execute(ctx, plan, action)).await?;
        log(&name, action, &outcome);
    }
    Ok(Action::requeue(decision.requeue_after.unwrap_or(RESYNC)))
}

/// `work` for `action`, or [`Error::ActionTimeout`] once it has taken `limit`.
async fn bounded<T>(
    limit: Duration,
    action: &Intent,
    work: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    tokio::time::timeout(limit, work)
        .await
        .map_err(|_| Error::ActionTimeout {
            action: format!("{action:?}"),
            after: limit,
        })?
}

async fn write_status(
    ctx: &Context,
    plan: &NodeUpdatePlan,
    status: &crate::api::NodeUpdatePlanStatus,
) -> Result<(), Error> {
    let api: Api<NodeUpdatePlan> = Api::all(ctx.client.clone());
    let patch = json!({
        "apiVersion": NodeUpdatePlan::api_version(&()),
        "kind": NodeUpdatePlan::kind(&()),
        "status": status,
    });
    api.patch_status(
        &plan.name_any(),
        &PatchParams::apply(keys::FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

/// The plan is being deleted: uncordon what it cordoned, release its claims; new nodes stay.
async fn cleanup(plan: &NodeUpdatePlan, ctx: &Context) -> Result<Action, Error> {
    let name = plan.name_any();
    let observed = snapshot(ctx, plan);
    let actions = engine::cleanup(plan, &observed);
    for action in &actions {
        let outcome = execute(ctx, plan, action).await?;
        log(&name, action, &outcome);
    }
    ctx.pods.set(&name, &BTreeSet::new());
    ctx.metrics.forget_plan(&name);
    if let Ok(mut f) = ctx.feedback.lock() {
        f.remove(&name);
    }
    info!(plan = %name, undone = actions.len(), "plan deleted: molt's marks removed");
    Ok(Action::await_change())
}

fn log(plan: &str, action: &Intent, outcome: &Outcome) {
    match action {
        Intent::Event { reason, note, .. } => info!(plan, reason, "{note}"),
        other => match outcome {
            Outcome::Done => info!(plan, ?other, "done"),
            Outcome::Skipped => info!(plan, ?other, "nothing to do"),
            Outcome::Evict(EvictAnswer::Evicted) => info!(plan, ?other, "evicted"),
            Outcome::Evict(EvictAnswer::Gone) => info!(plan, ?other, "pod already gone"),
            Outcome::Evict(EvictAnswer::Blocked(why)) => {
                info!(
                    plan,
                    ?other,
                    "eviction refused by a PodDisruptionBudget: {why}"
                )
            }
            Outcome::Evict(EvictAnswer::NamespaceTerminating) => {
                info!(
                    plan,
                    ?other,
                    "namespace being deleted; the pod goes with it"
                )
            }
            Outcome::Evict(EvictAnswer::Refused(why)) => {
                warn!(plan, ?other, "eviction refused: {why}")
            }
        },
    }
}

/// After an error: retry after the pause its kind calls for ([`Error::retry_after`]).
pub fn error_policy(plan: Arc<NodeUpdatePlan>, error: &Error, ctx: Arc<Context>) -> Action {
    warn!(plan = %plan.name_any(), category = error.category(), "{error}");
    ctx.metrics.error(error.category());
    Action::requeue(error.retry_after())
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
