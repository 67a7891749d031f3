//! One reconcile: finalizer → observe → decide → carry out (status, Events, actions).
//!
//! Level-triggered: nothing here depends on why the reconcile ran. The status is written before
//! any action, so a crash after the write repeats idempotent actions and a crash before it repeats
//! the whole decision.

use super::carry_out::{Shell, carry_out, log};
use super::context::Context;
use super::error::Error;
use super::execute::execute;
use super::observe::{in_flight, snapshot};
use crate::api::{NodeUpdatePlan, keys};
use crate::engine::{self, RESYNC};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event, finalizer};
use kube::{Api, ResourceExt};
use std::collections::BTreeSet;
use std::sync::Arc;
use tracing::{info, warn};

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
    let now = jiff::Timestamp::now();
    let mut observed = snapshot(ctx, plan);
    observed.measurements = super::metrics_query::measure(plan, now).await;
    let decision = engine::decide(plan, &observed, now);

    carry_out(&Shell { ctx, plan }, plan.status.as_ref(), &decision).await?;
    Ok(Action::requeue(decision.requeue_after.unwrap_or(RESYNC)))
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

/// After an error: retry after the pause its kind calls for ([`Error::retry_after`]).
pub fn error_policy(plan: Arc<NodeUpdatePlan>, error: &Error, ctx: Arc<Context>) -> Action {
    warn!(plan = %plan.name_any(), category = error.category(), "{error}");
    ctx.metrics.error(error.category());
    Action::requeue(error.retry_after())
}
