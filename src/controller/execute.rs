//! Carry out the engine's actions, each one idempotently and checked against the live object.
//!
//! Dispatch only, as far as possible: node writes live in [`super::nodes`] (read, decide, patch
//! with the resourceVersion), evictions in [`super::evict`] (UID precondition; molt never deletes
//! a pod).

use super::context::Context;
use super::error::Error;
use super::evict::{self, EvictAnswer};
use super::nodes::{cordon, get_node, patch_node, release, uncordon};
use crate::api::{NodeUpdatePlan, keys};
use crate::engine::Action;
use crate::engine::control_plane::is_control_plane_node;
use crate::engine::observed::EvictionFeedback;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

/// How one action went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done (or already done).
    Done,
    /// Nothing to do: the object is gone or already as wanted by someone else.
    Skipped,
    /// The API server's answer to an eviction.
    Evict(EvictAnswer),
}

/// Carry out `action` for `plan`.
pub async fn execute(
    ctx: &Context,
    plan: &NodeUpdatePlan,
    action: &Action,
) -> Result<Outcome, Error> {
    let me = plan.name_any();
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    match action {
        Action::Claim { node } => {
            let Some(n) = get_node(&nodes, node).await? else {
                return Ok(Outcome::Skipped);
            };
            let owner = n.annotations().get(keys::CLAIMED_BY_ANNOTATION).cloned();
            let free = match owner.as_deref() {
                None => true,
                Some(o) if o == me => return Ok(Outcome::Done),
                // Another plan's claim may be taken over only if it does not hold it, judged on
                // the owner as it is now, not as a cache last saw it.
                Some(o) => {
                    let plans: Api<NodeUpdatePlan> = Api::all(ctx.client.clone());
                    match plans.get_opt(o).await? {
                        None => true,
                        Some(owner) => !crate::engine::claims::holds(&owner, plan),
                    }
                }
            };
            if !free {
                return Ok(Outcome::Skipped);
            }
            patch_node(
                &nodes,
                &n,
                json!({"metadata": {"annotations": {keys::CLAIMED_BY_ANNOTATION: me}}}),
            )
            .await?;
            Ok(Outcome::Done)
        }
        Action::Release { node } => {
            let Some(n) = get_node(&nodes, node).await? else {
                return Ok(Outcome::Skipped);
            };
            patch_if(&nodes, &n, release(&n, &me)).await
        }
        Action::Cordon { node } => {
            let Some(n) = get_node(&nodes, node).await? else {
                return Ok(Outcome::Skipped);
            };
            patch_if(&nodes, &n, cordon(&n, &me)).await
        }
        Action::Uncordon { node } => {
            let Some(n) = get_node(&nodes, node).await? else {
                return Ok(Outcome::Skipped);
            };
            patch_if(&nodes, &n, uncordon(&n, &me)).await
        }
        Action::Evict {
            namespace,
            pod,
            uid,
            grace_period_seconds,
            ..
        } => {
            let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
            let answer = evict::evict(&pods, pod, uid, *grace_period_seconds).await?;
            ctx.metrics.eviction(answer.metric());
            match answer.feedback() {
                Some(outcome) => remember(
                    ctx,
                    &me,
                    EvictionFeedback {
                        namespace: namespace.clone(),
                        pod: pod.clone(),
                        uid: uid.clone(),
                        outcome,
                    },
                ),
                None => forget(ctx, &me, uid),
            }
            Ok(Outcome::Evict(answer))
        }
        Action::Provision(new) => {
            ctx.provisioner.create(new).await?;
            Ok(Outcome::Done)
        }
        Action::RemoveNode { node } => {
            let Some(n) = get_node(&nodes, node).await? else {
                return Ok(Outcome::Skipped);
            };
            if is_control_plane_node(&n) {
                return Ok(Outcome::Skipped);
            }
            ctx.provisioner.remove_node(node).await?;
            Ok(Outcome::Done)
        }
        Action::RemoveSlot { slot, node } => {
            if let Some(name) = node
                && let Some(n) = get_node(&nodes, name).await?
                && is_control_plane_node(&n)
            {
                return Ok(Outcome::Skipped);
            }
            ctx.provisioner.remove_slot(slot, node.as_deref()).await?;
            Ok(Outcome::Done)
        }
    }
}

/// Send `patch` to `n` if there is one; no patch means the node is not molt's to change.
async fn patch_if(api: &Api<Node>, n: &Node, patch: Option<Value>) -> Result<Outcome, Error> {
    match patch {
        Some(patch) => {
            patch_node(api, n, patch).await?;
            Ok(Outcome::Done)
        }
        None => Ok(Outcome::Skipped),
    }
}

fn remember(ctx: &Context, plan: &str, f: EvictionFeedback) {
    if let Ok(mut all) = ctx.feedback.lock() {
        let list = all.entry(plan.to_string()).or_default();
        list.retain(|e| e.uid != f.uid);
        list.push(f);
    }
}

fn forget(ctx: &Context, plan: &str, uid: &str) {
    if let Ok(mut all) = ctx.feedback.lock()
        && let Some(list) = all.get_mut(plan)
    {
        list.retain(|e| e.uid != uid);
    }
}
