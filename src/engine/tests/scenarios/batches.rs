//! Batch sizes and the names of new nodes.

use super::*;
use crate::api::BatchPhase;
use crate::api::condition::reasons;

fn provisions(d: &Decision) -> Vec<String> {
    acts(d)
        .into_iter()
        .filter(|a| a.starts_with("Provision"))
        .collect()
}

#[test]
fn a_count_batch_takes_that_many_nodes() {
    let mut w = World::with_nodes(plan_yaml("  strategy: {batchSize: 2}"), 5);
    let d = w.decide();
    assert_eq!(
        provisions(&d),
        [
            format!("Provision {} for old-0", new_name(0, 0, 0)),
            format!("Provision {} for old-1", new_name(0, 0, 1))
        ]
    );
    let b = w.batch(0);
    assert_eq!((b.index, b.phase), (0, BatchPhase::Provisioning));
    assert_eq!(b.old_nodes, ["old-0", "old-1"]);
    assert_eq!(b.new_nodes, [new_name(0, 0, 0), new_name(0, 0, 1)]);
    assert_eq!(b.provisioned_at, time(t0()));
    let s = &w.status().summary;
    assert_eq!(
        (s.nodes, s.updated, s.batches, s.current_batch),
        (5, 0, 3, 1)
    );
    assert_eq!((s.progress.as_str(), s.batch.as_str()), ("0/5", "1/3"));
    let (_, note) = event(&d, reasons::BATCH_STARTED);
    assert!(note.contains("old-0, old-1"), "{note}");
}

#[test]
fn a_percent_batch_rounds_up() {
    // 25% of 5 nodes is 1.25: two nodes per batch.
    let mut w = World::with_nodes(plan_yaml("  strategy: {batchSize: '25%'}"), 5);
    let d = w.decide();
    assert_eq!(provisions(&d).len(), 2);
    assert_eq!(w.batch(0).old_nodes, ["old-0", "old-1"]);
    assert_eq!(w.status().summary.batches, 3);

    // 10% of 3 nodes is 0.3: still one node.
    let mut w = World::with_nodes(plan_yaml("  strategy: {batchSize: '10%'}"), 3);
    w.decide();
    assert_eq!(w.batch(0).old_nodes, ["old-0"]);
    assert_eq!(w.status().summary.batches, 3);
}

#[test]
fn the_canary_is_a_smaller_first_batch() {
    let mut w = World::with_nodes(
        plan_yaml("  strategy: {batchSize: 3, canary: {nodes: 1}}\n  health: {soak: 0s}"),
        7,
    );
    let d = w.decide();
    assert_eq!(
        provisions(&d),
        [format!("Provision {} for old-0", new_name(0, 0, 0))]
    );
    assert_eq!(w.status().summary.batches, 3); // 1 + 3 + 3
    w.apply(&d);
    w.drive_until(|w| w.status().batches.len() == 2, 10);
    assert_eq!(w.batch(0).phase, BatchPhase::Completed);
    let b = w.batch(1);
    assert_eq!(b.old_nodes, ["old-1", "old-2", "old-3"]);
    assert_eq!(
        b.new_nodes,
        [new_name(0, 1, 0), new_name(0, 1, 1), new_name(0, 1, 2)]
    );
    assert_eq!(w.status().summary.updated, 1);
    assert_eq!(w.status().summary.batch, "2/3");
}

#[test]
fn new_node_names_are_deterministic() {
    let mut w = World::with_nodes(plan(), 2);
    let claims = w.peek();
    w.apply(&claims);
    let first = w.peek();
    let again = w.peek();
    assert_eq!(
        first, again,
        "the same plan, cluster and time give the same decision"
    );
    assert_eq!(
        provisions(&first),
        [format!("Provision {} for old-0", new_name(0, 0, 0))]
    );
    let Some(Action::Provision(n)) = first
        .actions
        .iter()
        .find(|a| matches!(a, Action::Provision(_)))
    else {
        panic!("a Provision action");
    };
    assert_eq!(n.name, "workers-v2-7f3c2-a0b0n0");
}

#[test]
fn a_restart_never_provisions_twice() {
    let mut w = World::with_nodes(plan(), 2);
    // The status is written, then the controller dies before creating the node.
    let d = w.decide();
    assert_eq!(provisions(&d).len(), 1);
    // The restarted controller asks again for the very same node, in the same batch.
    w.tick(3);
    let d = w.decide();
    assert_eq!(
        acts(&d),
        [format!("Provision {} for old-0", new_name(0, 0, 0))]
    );
    assert_eq!(w.status().batches.len(), 1);
    assert!(
        !events(&d).contains(&reasons::BATCH_STARTED),
        "{:?}",
        events(&d)
    );
    w.apply(&d);
    // Once the node exists (Ready or not), it is never requested again.
    for _ in 0..3 {
        w.tick(5);
        let d = w.decide();
        assert_eq!(acts(&d), Vec::<String>::new());
        assert_eq!(w.batch(0).phase, BatchPhase::Provisioning);
    }
    assert_eq!(
        w.obs
            .nodes
            .iter()
            .filter(|n| n.labels.contains_key(keys::PLAN_LABEL))
            .count(),
        1
    );
}
