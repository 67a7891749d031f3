//! One new node: failed at the provider, not up in time, under pressure, or lost after it was Ready.

use super::{Gate, WaitKind, add, human};
use crate::api::{BatchStatus, UnhealthyPod};
use crate::engine::observed::Observed;
use crate::engine::settings::Settings;
use crate::engine::slots;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// Judge the node of `slot`; its name if its pods are to be judged now (it exists, is Ready and
/// has no trouble). The pods of a node that is not up are its node's problem, not theirs: a
/// kubelet that never ran them cannot make them Ready.
pub(super) fn judge(
    gate: &mut Gate,
    settings: &Settings,
    observed: &Observed,
    batch: &BatchStatus,
    slot: &str,
    now: Timestamp,
) -> Option<String> {
    let name = slots::node_name(observed, batch, slot)
        .unwrap_or(slot)
        .to_string();
    let fail = |gate: &mut Gate, reason: String, since: Option<Timestamp>| {
        gate.failures
            .push(UnhealthyPod::node(&name, reason, since.map(Time)));
    };
    let requested = batch.provisioned_at.as_ref().map_or(now, |t| t.0);
    if let Some(reason) = slots::failure(observed, slot) {
        fail(
            gate,
            format!("the provider could not make new node {name}: {reason}"),
            Some(requested),
        );
        return None;
    }
    let was_ready = batch.ready_at.is_some();
    let Some(node) = slots::node(observed, batch, slot) else {
        if was_ready {
            fail(
                gate,
                format!("new node {name} disappeared after it had been Ready"),
                None,
            );
        } else {
            not_up(gate, settings, &name, "not created", requested, now);
        }
        return None;
    };
    let mut troubled = false;
    for (kind, since) in &node.troubles {
        // A cloud's routes may still be in the making while a node starts: that is start-up.
        if kind == "NetworkUnavailable" && !was_ready {
            not_up(gate, settings, &name, "without network", requested, now);
        } else {
            fail(
                gate,
                format!("new node {name} reports {kind}"),
                since.or(Some(now)),
            );
        }
        troubled = true;
    }
    if node.is_ready() {
        return (!troubled).then_some(name);
    }
    if troubled {
        return None;
    }
    if was_ready {
        let since = node
            .readiness_since
            .or(batch.ready_at.as_ref().map(|t| t.0))
            .unwrap_or(now);
        let due = add(since, settings.not_ready_timeout);
        if now >= due {
            fail(
                gate,
                format!(
                    "new node {name} went {:?} after it had been Ready and stayed so for {} (health.notReadyTimeout)",
                    node.readiness,
                    human(settings.not_ready_timeout)
                ),
                Some(since),
            );
        } else {
            gate.wait(
                WaitKind::Blip,
                format!(
                    "new node {name} to be Ready again ({:?} since {since})",
                    node.readiness
                ),
                Some(due),
            );
        }
    } else {
        not_up(gate, settings, &name, "not Ready", requested, now);
    }
    None
}

/// A new node not up yet: waited for until `nodeReadyTimeout` after it was requested.
fn not_up(
    gate: &mut Gate,
    settings: &Settings,
    name: &str,
    what: &str,
    requested: Timestamp,
    now: Timestamp,
) {
    let due = add(requested, settings.node_ready_timeout);
    if now >= due {
        gate.failures.push(UnhealthyPod::node(
            name,
            format!(
                "new node {name} {what} {} after it was requested (health.nodeReadyTimeout)",
                human(settings.node_ready_timeout)
            ),
            Some(Time(requested)),
        ));
    } else {
        gate.wait(
            WaitKind::Starting,
            format!("new node {name} to become Ready"),
            Some(due),
        );
    }
}
