//! Finalizer cleanup: undo molt's marks, and only molt's.

use super::*;
use crate::engine::{cleanup, cleanup_done};

fn marked(
    name: &str,
    cordoned_by: Option<&str>,
    claimed_by: Option<&str>,
    unschedulable: bool,
) -> NodeView {
    let mut n = node(name);
    n.unschedulable = unschedulable;
    if let Some(p) = cordoned_by {
        n.annotations
            .insert(keys::CORDONED_BY_ANNOTATION.into(), p.into());
    }
    if let Some(p) = claimed_by {
        n.annotations
            .insert(keys::CLAIMED_BY_ANNOTATION.into(), p.into());
    }
    n
}

#[test]
fn cleanup_uncordons_exactly_what_this_plan_cordoned_and_releases_its_claims() {
    let nodes = vec![
        marked("mine", Some(ME), Some(ME), true),
        marked("person", None, Some(ME), true),
        marked("other-plan", Some("workers-v3"), Some("workers-v3"), true),
        marked("claimed-only", None, Some(ME), false),
        marked("untouched", None, None, false),
    ];
    let mut w = World::new(plan(), nodes);
    let actions = cleanup(&w.plan, &w.obs);
    let d = Decision {
        actions,
        events: vec![],
        status: Default::default(),
        requeue_after: None,
    };
    assert_eq!(
        acts(&d),
        [
            "Uncordon mine",
            "Release mine",
            "Release person",
            "Release claimed-only"
        ]
    );
    assert!(!cleanup_done(&w.plan, &w.obs));

    w.apply(&d);
    assert!(cleanup_done(&w.plan, &w.obs));
    assert!(
        cleanup(&w.plan, &w.obs).is_empty(),
        "cleanup repeats safely"
    );
    assert!(!w.node("mine").unschedulable);
    assert!(w.node("person").unschedulable, "a person's cordon stays");
    let other = w.node("other-plan");
    assert!(
        other.unschedulable
            && other.cordoned_by() == Some("workers-v3")
            && other.claimed_by() == Some("workers-v3")
    );
    assert!(
        w.obs
            .nodes
            .iter()
            .all(|n| n.cordoned_by() != Some(ME) && n.claimed_by() != Some(ME))
    );
}

#[test]
fn cleanup_of_a_plan_that_never_started_is_a_no_op() {
    let w = World::with_nodes(plan(), 3);
    assert!(w.plan.status.is_none());
    assert!(cleanup(&w.plan, &w.obs).is_empty());
    assert!(cleanup_done(&w.plan, &w.obs));
}

#[test]
fn cleanup_in_the_middle_of_a_drain_puts_the_nodes_back_and_leaves_new_nodes() {
    let mut w = World::with_nodes(plan_yaml("  strategy: {batchSize: 2}"), 3);
    w.add_pod(pod("web-0", "old-0", "web", t0()));
    w.obs.pdbs = vec![pdb("web-pdb", "web", 0, 3, 3)];
    w.step();
    w.tick(30);
    w.ready_new_nodes();
    w.step();
    assert!(w.node("old-0").unschedulable && w.node("old-1").unschedulable);

    let actions = cleanup(&w.plan, &w.obs);
    let d = Decision {
        actions,
        events: vec![],
        status: Default::default(),
        requeue_after: None,
    };
    assert_eq!(
        acts(&d),
        [
            "Uncordon old-0",
            "Release old-0",
            "Uncordon old-1",
            "Release old-1",
            "Release old-2",
            // New nodes stay, without molt's claim.
            &format!("Release {}", new_name(0, 0, 0)),
            &format!("Release {}", new_name(0, 0, 1)),
        ]
    );
    w.apply(&d);
    assert!(cleanup_done(&w.plan, &w.obs));
    assert!(
        w.has_node(&new_name(0, 0, 0)) && w.has_node(&new_name(0, 0, 1)),
        "new nodes stay"
    );
    assert!(w.obs.nodes.iter().all(|n| !n.unschedulable));
}
