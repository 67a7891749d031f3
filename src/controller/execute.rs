//! Carry out the engine's actions, each one idempotently and checked against the live object.
//!
//! Node writes read the node first and patch with its resourceVersion, so a change that raced
//! with molt (a person cordoning, another plan claiming) turns into a conflict and a retry instead
//! of a lost update. Evictions carry the pod's UID, so a pod recreated under the same name is never
//! evicted by mistake. molt never deletes a pod.

use super::context::Context;
use super::error::Error;
use super::evict::{self, EvictAnswer};
use crate::api::{NodeUpdatePlan, keys};
use crate::engine::Action;
use crate::engine::observed::EvictionFeedback;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Patch, PatchParams};
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

fn is(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

async fn get_node(api: &Api<Node>, name: &str) -> Result<Option<Node>, Error> {
    Ok(api.get_opt(name).await?)
}

/// Merge-patch a node, failing with a conflict if it changed since `seen`.
async fn patch_node(api: &Api<Node>, seen: &Node, mut patch: Value) -> Result<(), Error> {
    patch["metadata"]["resourceVersion"] = json!(seen.resource_version());
    match api
        .patch(
            &seen.name_any(),
            &PatchParams::apply(keys::FIELD_MANAGER),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is(&e, 409) => Err(Error::Conflict {
            what: format!("node {}", seen.name_any()),
        }),
        Err(e) => Err(e.into()),
    }
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
            if n.annotations().get(keys::CLAIMED_BY_ANNOTATION) != Some(&me) {
                return Ok(Outcome::Skipped);
            }
            patch_node(
                &nodes,
                &n,
                json!({"metadata": {"annotations": {keys::CLAIMED_BY_ANNOTATION: null}}}),
            )
            .await?;
            Ok(Outcome::Done)
        }
        Action::Cordon { node } => {
            let Some(n) = get_node(&nodes, node).await? else {
                return Ok(Outcome::Skipped);
            };
            if n.spec
                .as_ref()
                .and_then(|s| s.unschedulable)
                .unwrap_or(false)
            {
                // Someone else cordoned it: leave it, and leave no mark of ours.
                return Ok(Outcome::Skipped);
            }
            if n.labels()
                .keys()
                .any(|k| keys::CONTROL_PLANE_LABELS.contains(&k.as_str()))
            {
                return Ok(Outcome::Skipped);
            }
            patch_node(
                &nodes,
                &n,
                json!({"metadata": {"annotations": {keys::CORDONED_BY_ANNOTATION: me}}, "spec": {"unschedulable": true}}),
            )
            .await?;
            Ok(Outcome::Done)
        }
        Action::Uncordon { node } => {
            let Some(n) = get_node(&nodes, node).await? else {
                return Ok(Outcome::Skipped);
            };
            if n.annotations().get(keys::CORDONED_BY_ANNOTATION) != Some(&me) {
                return Ok(Outcome::Skipped);
            }
            patch_node(
                &nodes,
                &n,
                json!({"metadata": {"annotations": {keys::CORDONED_BY_ANNOTATION: null}}, "spec": {"unschedulable": null}}),
            )
            .await?;
            Ok(Outcome::Done)
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
