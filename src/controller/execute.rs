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
                // A claim by a plan that no longer exists or no longer acts may be taken over.
                Some(o) => !ctx
                    .stores
                    .plans
                    .state()
                    .iter()
                    .any(|p| p.name_any() == o && p.is_active()),
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
            if n.labels()
                .keys()
                .any(|k| keys::CONTROL_PLANE_LABELS.contains(&k.as_str()))
            {
                return Ok(Outcome::Skipped);
            }
            ctx.provisioner.remove(node).await?;
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
