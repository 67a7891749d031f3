//! Which nodes a plan covers: the selector, the control plane, nodes already on the target, claims.

use super::*;
use crate::api::condition::reasons;
use k8s_openapi::api::core::v1::Taint;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

fn in_pool(name: &str, pool: &str) -> NodeView {
    let mut n = node(name);
    n.labels.insert("pool".into(), pool.into());
    n
}

#[test]
fn only_nodes_the_selector_picks_are_claimed_and_replaced() {
    let mut w = World::new(
        plan(),
        vec![node("old-0"), in_pool("db-0", "db"), node("old-1")],
    );
    let d = w.decide();
    assert_eq!(
        acts(&d),
        [
            "Claim old-0",
            "Claim old-1",
            format!("Provision {} for old-0", new_name(0, 0, 0)).as_str()
        ]
    );
    assert_eq!(events(&d), [reasons::PLAN_STARTED, reasons::BATCH_STARTED]);
    assert_eq!(w.phase(), Phase::Progressing);
    assert_eq!(w.status().started_at, time(t0()));
    assert_eq!(w.status().summary.nodes, 2);
    assert_eq!(w.batch(0).old_nodes, ["old-0"]);
    assert_cond(
        w.status(),
        types::PROGRESSING,
        "True",
        reasons::PROVISIONING,
    );

    // matchExpressions select as Kubernetes does.
    let mut p = plan();
    p.spec.node_selector = LabelSelector {
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: "pool".into(),
            operator: "In".into(),
            values: Some(vec!["db".into()]),
        }]),
        ..Default::default()
    };
    let mut w = World::new(p, vec![node("old-0"), in_pool("db-0", "db")]);
    let d = w.decide();
    assert_eq!(
        acts(&d),
        [
            "Claim db-0",
            format!("Provision {} for db-0", new_name(0, 0, 0)).as_str()
        ]
    );
}

#[test]
fn control_plane_nodes_are_never_selected_even_when_the_selector_matches() {
    // One carries the control-plane label, the other only the control-plane taint; both are in the pool.
    let mut tainted = node("cp-1");
    tainted.taints.push(Taint {
        key: "node-role.kubernetes.io/control-plane".into(),
        effect: "NoSchedule".into(),
        ..Default::default()
    });
    let mut w = World::new(plan(), vec![control_plane("cp-0"), tainted, node("old-0")]);
    w.add_pod(pod("etcd-helper", "cp-0", "helper", t0()));
    let d = w.decide();
    assert_eq!(
        acts(&d),
        [
            "Claim old-0",
            format!("Provision {} for old-0", new_name(0, 0, 0)).as_str()
        ]
    );
    assert_eq!(w.status().summary.nodes, 1);

    // All the way to the end, nothing touches them.
    let decisions = w.drive_until(|w| w.phase() == Phase::Succeeded, 50);
    for d in &decisions {
        for a in &d.actions {
            assert!(
                !matches!(a.node(), Some("cp-0" | "cp-1")),
                "{a:?} touches a control-plane node"
            );
        }
    }
    for cp in ["cp-0", "cp-1"] {
        let n = w.node(cp);
        assert!(
            !n.unschedulable && n.cordoned_by().is_none() && n.claimed_by().is_none(),
            "{n:?}"
        );
    }
    assert!(
        w.obs
            .pods
            .iter()
            .any(|p| p.name == "etcd-helper" && p.deleting_since.is_none())
    );

    // A selector that only matches control-plane nodes matches nothing.
    let mut w = World::new(plan(), vec![control_plane("cp-0")]);
    let d = w.decide();
    assert_idle(&d);
    assert_eq!(w.phase(), Phase::Pending);
    assert_cond(
        w.status(),
        types::PROGRESSING,
        "False",
        reasons::NO_MATCHING_NODES,
    );
}

#[test]
fn nodes_already_on_the_target_image_are_skipped() {
    let mut done = node("new-0");
    done.labels.insert(keys::IMAGE_LABEL.into(), "v2".into());
    let mut older = node("old-1");
    older.labels.insert(keys::IMAGE_LABEL.into(), "v1".into());
    let mut w = World::new(plan(), vec![done, node("old-0"), older]);
    let d = w.decide();
    assert_eq!(
        acts(&d),
        [
            "Claim old-0",
            "Claim old-1",
            format!("Provision {} for old-0", new_name(0, 0, 0)).as_str()
        ]
    );
    assert_eq!(w.status().summary.nodes, 2);
    assert_eq!(w.status().summary.progress, "0/2");
    assert!(
        w.status()
            .batches
            .iter()
            .all(|b| !b.old_nodes.contains(&"new-0".to_string()))
    );
}

#[test]
fn which_nodes_run_the_target_is_the_providers_answer_not_molts_marks() {
    // An in-place provider that reads the OS the node reports (here a label standing in for
    // `status.nodeInfo.osImage`): molt's image mark means nothing to it.
    let mut updated = node("in-place-0");
    updated.labels.insert("os".into(), "v2".into());
    let mut marked = node("marked-0");
    marked
        .annotations
        .insert(keys::IMAGE_ANNOTATION.into(), "v2".into());
    let mut w = World::new(plan(), vec![updated, marked]);
    w.on_target = |n, target| n.labels.get("os").map(String::as_str) == Some(target);
    let d = w.decide();
    assert_eq!(
        acts(&d),
        [
            "Claim marked-0",
            format!("Provision {} for marked-0", new_name(0, 0, 0)).as_str()
        ]
    );
    assert_eq!(w.status().summary.nodes, 1);
    assert_eq!(w.batch(0).old_nodes, ["marked-0"]);
}

#[test]
fn no_matching_node_leaves_the_plan_pending() {
    let mut w = World::new(plan(), vec![in_pool("db-0", "db"), in_pool("db-1", "db")]);
    let d = w.decide();
    assert_idle(&d);
    assert_eq!(w.phase(), Phase::Pending);
    assert_eq!(w.status().started_at, None);
    let c = assert_cond(
        w.status(),
        types::PROGRESSING,
        "False",
        reasons::NO_MATCHING_NODES,
    );
    assert!(c.message.contains("spec.nodeSelector"), "{}", c.message);
    assert_cond(
        w.status(),
        types::COMPLETE,
        "False",
        reasons::NOT_APPLICABLE,
    );
    assert_cond(
        w.status(),
        types::DEGRADED,
        "False",
        reasons::NOT_APPLICABLE,
    );

    // Nodes that start matching later are picked up.
    w.obs.nodes.push(node("old-0"));
    w.obs.pods_observed_on.insert("old-0".into());
    w.tick(60);
    let d = w.decide();
    assert_eq!(events(&d), [reasons::PLAN_STARTED, reasons::BATCH_STARTED]);
    assert_eq!(w.phase(), Phase::Progressing);
}

#[test]
fn a_pool_already_on_the_target_succeeds_at_once() {
    let nodes: Vec<NodeView> = (0..2)
        .map(|i| {
            let mut n = node(&format!("new-{i}"));
            n.labels.insert(keys::IMAGE_LABEL.into(), "v2".into());
            n
        })
        .collect();
    let mut w = World::new(plan(), nodes);
    let d = w.decide();
    assert_eq!(acts(&d), Vec::<String>::new());
    assert_eq!(events(&d), [reasons::SUCCEEDED]);
    assert_eq!(event(&d, reasons::SUCCEEDED).0, EventType::Normal);
    assert_eq!(w.phase(), Phase::Succeeded);
    assert_eq!(w.status().completed_at, time(t0()));
    assert!(w.status().batches.is_empty());
    assert_cond(w.status(), types::COMPLETE, "True", reasons::SUCCEEDED);
    assert_cond(w.status(), types::PROGRESSING, "False", reasons::SUCCEEDED);
    assert_eq!(d.requeue_after, None);
}

#[test]
fn nodes_claimed_by_another_active_plan_block_the_start() {
    let mut w = World::with_nodes(plan(), 2);
    w.node_mut("old-1")
        .annotations
        .insert(keys::CLAIMED_BY_ANNOTATION.into(), "workers-v3".into());
    w.obs.other_plans.insert("workers-v3".into(), true);
    let d = w.decide();
    assert_idle(&d);
    assert_eq!(w.phase(), Phase::Pending);
    assert_eq!(w.status().started_at, None);
    assert_eq!(w.status().blockers.len(), 1);
    assert_eq!(w.status().blockers[0].node, "old-1");
    assert_eq!(
        w.status().blockers[0].reason,
        "node old-1 belongs to plan workers-v3, which is still active"
    );
    let c = assert_cond(
        w.status(),
        types::BLOCKED,
        "True",
        reasons::CLAIMED_BY_ANOTHER_PLAN,
    );
    assert!(c.message.contains("workers-v3"), "{}", c.message);
    assert_cond(
        w.status(),
        types::PROGRESSING,
        "False",
        reasons::CLAIMED_BY_ANOTHER_PLAN,
    );

    // Once the other plan is no longer active, its leftover claim is ignored and taken over.
    w.obs.other_plans.insert("workers-v3".into(), false);
    w.tick(30);
    let d = w.decide();
    assert_eq!(
        acts(&d),
        [
            "Claim old-0",
            "Claim old-1",
            format!("Provision {} for old-0", new_name(0, 0, 0)).as_str()
        ]
    );
    assert_eq!(w.phase(), Phase::Progressing);
    assert!(w.status().blockers.is_empty());
    assert_cond(w.status(), types::BLOCKED, "False", reasons::NOT_APPLICABLE);
}

#[test]
fn a_claim_by_a_plan_that_is_gone_or_finished_is_ignored() {
    let mut w = World::with_nodes(plan(), 2);
    w.node_mut("old-0")
        .annotations
        .insert(keys::CLAIMED_BY_ANNOTATION.into(), "finished".into());
    w.node_mut("old-1")
        .annotations
        .insert(keys::CLAIMED_BY_ANNOTATION.into(), "deleted".into());
    w.obs.other_plans.insert("finished".into(), false);
    let d = w.decide();
    assert_eq!(w.phase(), Phase::Progressing);
    assert_eq!(
        acts(&d),
        [
            "Claim old-0",
            "Claim old-1",
            format!("Provision {} for old-0", new_name(0, 0, 0)).as_str()
        ]
    );
}

#[test]
fn a_claim_lost_mid_flight_is_made_again_unless_another_active_plan_took_the_node() {
    let mut w = World::with_nodes(plan(), 3);
    w.step();
    for n in ["old-1", "old-2"] {
        w.node_mut(n)
            .annotations
            .remove(keys::CLAIMED_BY_ANNOTATION);
    }
    // Meanwhile another plan, still active, took old-2.
    w.node_mut("old-2")
        .annotations
        .insert(keys::CLAIMED_BY_ANNOTATION.into(), "workers-v3".into());
    w.obs.other_plans.insert("workers-v3".into(), true);
    w.tick(5);
    let d = w.step();
    assert_eq!(acts(&d), ["Claim old-1"]);
    assert_eq!(w.node("old-2").claimed_by(), Some("workers-v3"));
    // The plan goes on without the node it lost.
    w.drive_until(|w| w.phase() == Phase::Succeeded, 100);
    assert!(
        w.status()
            .batches
            .iter()
            .all(|b| !b.old_nodes.contains(&"old-2".to_string()))
    );
    assert_eq!(w.node("old-2").claimed_by(), Some("workers-v3"));
    assert!(!w.node("old-2").unschedulable);
}

#[test]
fn a_batch_node_another_plan_owns_is_never_cordoned() {
    // Two plans raced for old-0; the other one's conditional claim won after this plan recorded
    // its batch. The drain must wait rather than cordon a node two plans think they own.
    let mut w = World::with_nodes(plan(), 1);
    w.step();
    w.node_mut("old-0")
        .annotations
        .insert(keys::CLAIMED_BY_ANNOTATION.into(), "other".into());
    w.obs.other_plans.insert("other".into(), true);
    w.ready_new_nodes();
    let d = w.step();
    assert!(
        !acts(&d)
            .iter()
            .any(|a| a.starts_with("Cordon") || a.starts_with("Evict")),
        "{:?}",
        acts(&d)
    );
    assert_eq!(w.batch(0).phase, crate::api::BatchPhase::Provisioning);
    assert_cond(
        w.status(),
        types::BLOCKED,
        "True",
        reasons::CLAIMED_BY_ANOTHER_PLAN,
    );
    // Once the other plan is gone, the claim is taken and the drain starts.
    w.obs.other_plans.insert("other".into(), false);
    let d = w.step();
    assert_eq!(acts(&d), ["Claim old-0".to_string()]);
    let d = w.step();
    assert!(
        acts(&d).contains(&"Cordon old-0".to_string()),
        "{:?}",
        acts(&d)
    );
}

#[test]
fn a_plan_claims_every_node_before_it_touches_any() {
    let mut w = World::with_nodes(plan(), 2);
    w.unfolded = true;
    let d = w.step();
    assert_eq!(acts(&d), ["Claim old-0", "Claim old-1"]);
    assert_eq!(events(&d), Vec::<&str>::new());
    assert_eq!(w.phase(), Phase::Pending);
    assert_eq!(w.status().started_at, None, "not started: nothing touched");
    assert!(w.status().batches.is_empty());
    let c = assert_cond(w.status(), types::PROGRESSING, "False", reasons::CLAIMING);
    assert!(c.message.contains("2 not yet this plan's"), "{}", c.message);

    // One claim did not land (the compare-and-set lost, or a crash): still nothing provisioned.
    w.node_mut("old-1")
        .annotations
        .remove(keys::CLAIMED_BY_ANNOTATION);
    let d = w.decide();
    assert_eq!(acts(&d), ["Claim old-1"]);
    w.apply(&d);

    // Every claim seen: now it starts.
    let d = w.step();
    assert_eq!(w.phase(), Phase::Progressing);
    assert_eq!(
        acts(&d),
        [format!("Provision {} for old-0", new_name(0, 0, 0))]
    );
    assert_eq!(events(&d), [reasons::PLAN_STARTED, reasons::BATCH_STARTED]);
}

#[test]
fn of_two_plans_claiming_at_once_the_younger_gives_way() {
    // Created back to back: both claimed part of the pool before either started. The other
    // plan came first, so its claim holds; this one releases its own and waits, untouched.
    let mut w = World::with_nodes(plan(), 3);
    w.unfolded = true;
    w.step();
    w.node_mut("old-1")
        .annotations
        .insert(keys::CLAIMED_BY_ANNOTATION.into(), "workers-a".into());
    w.obs.other_plans.insert("workers-a".into(), true);
    let d = w.step();
    assert_eq!(acts(&d), ["Release old-0", "Release old-2"]);
    assert_eq!(w.phase(), Phase::Pending);
    assert_eq!(w.status().started_at, None);
    assert_cond(
        w.status(),
        types::BLOCKED,
        "True",
        reasons::CLAIMED_BY_ANOTHER_PLAN,
    );

    // Seen from the older plan, the younger one's claims do not hold: it takes them over.
    let mut older = World::with_nodes(plan(), 3);
    older.unfolded = true;
    for n in ["old-0", "old-2"] {
        older
            .node_mut(n)
            .annotations
            .insert(keys::CLAIMED_BY_ANNOTATION.into(), "workers-b".into());
    }
    older.obs.other_plans.insert("workers-b".into(), false);
    let d = older.step();
    assert_eq!(acts(&d), ["Claim old-0", "Claim old-1", "Claim old-2"]);
    older.step();
    assert_eq!(older.phase(), Phase::Progressing);
}

#[test]
fn another_plans_new_nodes_are_never_taken_for_old_ones() {
    // The other plan's new node copied the pool's labels; it is born claimed by that plan.
    let mut w = World::with_nodes(plan(), 1);
    let mut theirs = node("theirs-a0b0n0");
    theirs
        .annotations
        .insert(keys::CLAIMED_BY_ANNOTATION.into(), "workers-v3".into());
    w.obs.nodes.push(theirs);
    w.obs.other_plans.insert("workers-v3".into(), true);
    let d = w.step();
    assert!(
        !acts(&d).iter().any(|a| a.contains("theirs")),
        "{:?}",
        acts(&d)
    );
    assert_eq!(w.phase(), Phase::Pending);
    assert_cond(
        w.status(),
        types::BLOCKED,
        "True",
        reasons::CLAIMED_BY_ANOTHER_PLAN,
    );
}
