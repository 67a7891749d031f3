//! Finalizer cleanup: undo molt's marks before a plan goes away.
//!
//! Every node this plan cordoned is uncordoned and every claim released; new nodes stay (they run
//! workloads). It must work whether or not the plan ever started, and repeat safely.

use super::action::Action;
use super::observed::Observed;
use crate::api::NodeUpdatePlan;
use kube::ResourceExt;

/// The actions that remove this plan's marks from the cluster.
pub fn cleanup(plan: &NodeUpdatePlan, observed: &Observed) -> Vec<Action> {
    let me = plan.name_any();
    let mut actions = vec![];
    for n in &observed.nodes {
        if n.cordoned_by() == Some(me.as_str()) {
            actions.push(Action::Uncordon {
                node: n.name.clone(),
            });
        }
        if n.claimed_by() == Some(me.as_str()) {
            actions.push(Action::Release {
                node: n.name.clone(),
            });
        }
    }
    actions
}

/// No node carries this plan's marks any more: the finalizer may go.
pub fn cleanup_done(plan: &NodeUpdatePlan, observed: &Observed) -> bool {
    cleanup(plan, observed).is_empty()
}
