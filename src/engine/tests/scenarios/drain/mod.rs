//! Cordon and drain: provenance of cordons, observation and the drain timeout here; kubectl's pod
//! rules in `pods`, PodDisruptionBudgets, bounded slices and the API server's answers in `budgets`.

mod budgets;
mod pods;

use super::*;
use crate::api::condition::reasons;
use crate::api::{BatchPhase, Blocker, BlockerKind, DisplacedWorkload};
use crate::engine::drain::EVICTIONS_PER_PASS;
use crate::engine::observed::{EvictionFeedback, EvictionOutcome};

/// `n` worker nodes with these pods and PDBs, taken to the decision that starts the first drain
/// (t0+30s, the new nodes just turned Ready). The decision is recorded, not carried out.
fn first_drain(
    p: NodeUpdatePlan,
    n: usize,
    pods: Vec<PodView>,
    pdbs: Vec<PdbView>,
) -> (World, Decision) {
    let mut w = World::with_nodes(p, n);
    for p in pods {
        w.add_pod(p);
    }
    w.obs.pdbs = pdbs;
    w.step();
    w.tick(30);
    w.ready_new_nodes();
    let d = w.decide();
    (w, d)
}

fn web(name: &str, node: &str) -> PodView {
    pod(name, node, "web", t0())
}

// --- cordon ---

#[test]
fn the_draining_event_is_emitted_once_so_it_travels_apart_from_the_cordon() {
    let (mut w, d) = first_drain(plan(), 1, vec![web("web-0", "old-0")], vec![]);
    assert_eq!(acts(&d), ["Cordon old-0", "Evict default/web-0"]);
    assert!(events(&d).contains(&reasons::DRAINING), "{:?}", events(&d));
    // The status is recorded, then the cordon fails (a conflict): nothing else is carried out.
    w.tick(1);
    let again = w.decide();
    assert_eq!(
        acts(&again),
        ["Cordon old-0", "Evict default/web-0"],
        "the actions are asked for again"
    );
    assert!(
        !events(&again).contains(&reasons::DRAINING),
        "the transition's Event is not: the shell must publish it before the actions {:?}",
        events(&again)
    );
}

#[test]
fn a_drain_is_done_only_once_its_cordon_is_seen_even_on_an_empty_node() {
    let (mut w, d) = first_drain(plan(), 1, vec![], vec![]);
    assert_eq!(acts(&d), ["Cordon old-0"]);
    w.tick(1);
    // The status was written, the cordon was not (a conflict): no soak on a schedulable node.
    let d = w.step();
    assert_eq!(acts(&d), ["Cordon old-0"], "the cordon is asked for again");
    assert_eq!(w.batch(0).phase, BatchPhase::Draining);
    assert!(!events(&d).contains(&reasons::DRAIN_COMPLETED));
    w.tick(1);
    let d = w.step();
    assert_eq!(acts(&d), Vec::<String>::new());
    assert_eq!(events(&d), [reasons::DRAIN_COMPLETED]);
    assert_eq!(w.batch(0).phase, BatchPhase::Soaking);
}

#[test]
fn molt_cordons_the_batch_before_evicting_and_records_that_it_did() {
    let (mut w, d) = first_drain(
        plan(),
        2,
        vec![web("web-0", "old-0"), web("web-1", "old-1")],
        vec![],
    );
    assert_eq!(acts(&d), ["Cordon old-0", "Evict default/web-0"]);
    assert_eq!(events(&d), [reasons::NODES_READY, reasons::DRAINING]);
    let (kind, note) = event(&d, reasons::DRAINING);
    assert_eq!(kind, EventType::Normal);
    assert!(note.contains("cordoning and draining old-0"), "{note}");
    w.apply(&d);
    assert_eq!(w.node("old-0").cordoned_by(), Some(ME));
    assert!(
        !w.node("old-1").unschedulable,
        "only the batch's nodes are cordoned"
    );
    // A cordon is never repeated once it holds.
    w.tick(5);
    let d = w.decide();
    assert!(
        !acts(&d).iter().any(|a| a.starts_with("Cordon")),
        "{:?}",
        acts(&d)
    );
}

#[test]
fn a_node_a_person_cordoned_is_not_cordoned_again_and_never_uncordoned() {
    let mut p = plan();
    p.spec.health.max_restarts = 0;
    let mut w = World::with_nodes(p, 2);
    w.node_mut("old-1").unschedulable = true; // a person's cordon: no molt annotation
    w.add_pod(web("web-0", "old-1"));
    let d = w.step();
    // Nodes already out of service go first: draining them costs no capacity.
    assert_eq!(w.batch(0).old_nodes, ["old-1"]);
    assert!(acts(&d).contains(&format!("Provision {} for old-1", new_name(0, 0, 0))));
    w.tick(30);
    w.ready_new_nodes();
    let d = w.step();
    assert_eq!(
        acts(&d),
        ["Evict default/web-0"],
        "no Cordon for a node that is already cordoned"
    );
    assert_eq!(w.node("old-1").cordoned_by(), None);

    // The new image fails; the rollback uncordons nothing a person cordoned.
    w.tick(5);
    w.gone();
    w.land("web-1", &new_name(0, 0, 0), "web");
    w.pod_mut("web-1").restarts = 1;
    let new = new_name(0, 0, 0);
    let d = w.step();
    assert_eq!(w.phase(), Phase::RollingBack);
    assert_eq!(
        acts(&d),
        [format!("Cordon {new}"), "Evict default/web-1".to_string()]
    );
    w.tick(5);
    w.gone();
    let d = w.step();
    assert_eq!(acts(&d), [format!("RemoveSlot {new}")]);
    w.tick(5);
    let d = w.step();
    assert_eq!(w.phase(), Phase::RolledBack);
    assert_eq!(acts(&d), ["Release old-0", "Release old-1"]);
    assert!(w.node("old-1").unschedulable, "the person's cordon stays");
}

// --- observation ---

#[test]
fn no_drain_starts_before_the_nodes_pods_are_observed() {
    let mut w = World::with_nodes(plan(), 1);
    w.add_pod(web("web-0", "old-0"));
    w.obs.pods_observed_on.remove("old-0");
    w.step();
    w.tick(30);
    w.ready_new_nodes();
    let d = w.decide();
    assert_eq!(acts(&d), Vec::<String>::new(), "no cordon, no eviction");
    assert_eq!(events(&d), [reasons::NODES_READY]);
    assert_eq!(w.batch(0).phase, BatchPhase::Provisioning);
    assert_eq!(w.batch(0).drain_started_at, None);
    let c = assert_cond(w.status(), types::PROGRESSING, "True", reasons::OBSERVING);
    assert!(
        c.message.contains("waiting to observe the pods on old-0"),
        "{}",
        c.message
    );
    assert!(d.requeue_after.is_some_and(|r| r <= crate::engine::RETRY));

    w.obs.pods_observed_on.insert("old-0".into());
    w.tick(1);
    let d = w.decide();
    assert_eq!(acts(&d), ["Cordon old-0", "Evict default/web-0"]);
    assert_eq!(events(&d), [reasons::DRAINING]);
}

// --- drain timeout ---

fn stuck_on_pdb(extra: &str) -> (World, Timestamp) {
    let (mut w, d) = first_drain(
        plan_yaml(extra),
        1,
        vec![web("web-0", "old-0")],
        vec![pdb("web-pdb", "web", 0, 3, 3)],
    );
    w.apply(&d);
    let started = w.now;
    // drain.timeout is 30m from the start of the drain.
    w.tick(1799);
    let d = w.step();
    assert_eq!(
        (w.phase(), w.batch(0).phase),
        (Phase::Progressing, BatchPhase::Draining),
        "{:?}",
        events(&d)
    );
    w.tick(1);
    (w, started)
}

#[test]
fn a_drain_that_times_out_halts_by_default() {
    let (mut w, started) = stuck_on_pdb("");
    let d = w.step();
    assert_eq!(w.phase(), Phase::Halted);
    assert_eq!(acts(&d), Vec::<String>::new());
    assert_eq!(events(&d), [reasons::DRAIN_TIMEOUT, reasons::HALTED]);
    let f = w.status().failure.clone().unwrap();
    assert_eq!(
        (f.reason.as_str(), f.batch),
        (reasons::DRAIN_TIMEOUT, Some(0))
    );
    assert!(
        f.message.contains("did not finish within 30m (drain.timeout); 1 pods left; pod default/web-0: PDB web-pdb allows 0"),
        "{}",
        f.message
    );
    assert_cond(w.status(), types::DEGRADED, "True", reasons::DRAIN_TIMEOUT);
    assert_cond(w.status(), types::PROGRESSING, "False", reasons::HALTED);
    assert_eq!(w.batch(0).drain_started_at, time(started));
    assert_eq!(
        w.node("old-0").cordoned_by(),
        Some(ME),
        "a halt leaves the node as it is"
    );

    // The budget opening later changes nothing: no eviction after a halt.
    w.obs.pdbs = vec![pdb("web-pdb", "web", 1, 4, 3)];
    w.tick(60);
    let d = w.step();
    assert_idle(&d);
}

#[test]
fn a_drain_that_times_out_plans_nothing_toward_the_target_even_when_a_budget_opens() {
    let (mut w, _) = stuck_on_pdb("");
    // Someone uncordoned the node and the budget opened, both just as the timeout ran out.
    w.node_mut("old-0").unschedulable = false;
    w.obs.pdbs = vec![pdb("web-pdb", "web", 1, 4, 3)];
    let d = w.decide();
    assert_eq!(events(&d), [reasons::DRAIN_TIMEOUT, reasons::HALTED]);
    assert_eq!(acts(&d), Vec::<String>::new(), "no cordon, no eviction");
}

#[test]
fn a_drain_that_times_out_rolls_back_with_on_timeout_rollback() {
    let (mut w, _) = stuck_on_pdb("  drain: {onTimeout: Rollback}");
    let new = new_name(0, 0, 0);
    let d = w.step();
    assert_eq!(w.phase(), Phase::RollingBack);
    assert_eq!(
        acts(&d),
        [
            "Uncordon old-0".to_string(),
            format!("Cordon {new}"),
            format!("RemoveSlot {new}")
        ]
    );
    assert_eq!(
        events(&d),
        [reasons::DRAIN_TIMEOUT, reasons::ROLLBACK_STARTED]
    );
    assert_cond(w.status(), types::DEGRADED, "True", reasons::DRAIN_TIMEOUT);
    w.tick(5);
    let d = w.step();
    assert_eq!(w.phase(), Phase::RolledBack);
    assert_eq!(acts(&d), ["Release old-0"]);
    assert!(!w.node("old-0").unschedulable);
}
