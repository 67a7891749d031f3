//! The bound on displaced workloads a batch records ([`MAX_DISPLACED`]): a drain that displaces
//! more says how many went unchecked, and every workload it did record is still checked.

use super::*;
use crate::api::condition::reasons;
use crate::api::{BatchPhase, Subject, Verdict};
use crate::engine::limits::{EVICTIONS_PER_PASS, MAX_DISPLACED};

/// Workloads beyond the bound in these scenarios.
const BEYOND: usize = 5;

/// Workload `i` of [`crowded`]: names sort as the engine orders workloads.
fn name(i: usize) -> String {
    format!("w-{i:04}")
}

/// One old node running one pod of each of `MAX_DISPLACED + BEYOND` one-replica ReplicaSets,
/// taken through its drain: at return the batch is Soaking and none of the pods came back yet.
/// Returns the world, the instant the drain completed and the Events of the drain.
fn crowded() -> (World, Timestamp, Vec<(EventType, &'static str, String)>) {
    let mut w = World::with_nodes(plan(), 1);
    let n = MAX_DISPLACED + BEYOND;
    // Cheaply: the pods, and the ready counts their controllers would report, without the
    // controllers.
    for i in 0..n {
        w.add_pod(pod(&name(i), "old-0", &name(i), t0()));
        w.workload(&name(i), 1);
    }
    w.step(); // claim, provision
    w.tick(30);
    w.ready_new_nodes();
    let mut seen = vec![];
    for _ in 0..(n / EVICTIONS_PER_PASS + 5) {
        let d = w.step();
        seen.extend(d.events.iter().map(|e| (e.type_, e.reason, e.note.clone())));
        if w.batch(0).phase == BatchPhase::Soaking {
            let drained = w.now;
            return (w, drained, seen);
        }
        w.tick(5);
        w.gone();
    }
    panic!("the drain did not complete: {:?}", w.status().message);
}

#[test]
fn a_drain_that_displaces_more_workloads_than_the_bound_says_how_many_went_unchecked() {
    let (w, drained, seen) = crowded();
    let b = w.batch(0);
    assert_eq!(b.drain_completed_at, time(drained));
    assert_eq!(b.displaced.len(), MAX_DISPLACED);
    assert_eq!(b.displaced_unrecorded, BEYOND as u32);
    // The first ones in the engine's order are recorded, each with its pre-drain ready count.
    assert_eq!(b.displaced[0].workload, rs_ref(&name(0)));
    assert_eq!(
        b.displaced.last().unwrap().workload,
        rs_ref(&name(MAX_DISPLACED - 1))
    );
    assert!(b.displaced.iter().all(|d| d.ready_before == 1));
    // Said once, when the drain started.
    let warned: Vec<_> = seen
        .iter()
        .filter(|(_, r, _)| *r == reasons::DISPLACED_UNRECORDED)
        .collect();
    assert_eq!(
        warned,
        [&(
            EventType::Warning,
            reasons::DISPLACED_UNRECORDED,
            format!(
                "batch 1/1: the drain displaces {} workloads; the gate checks the first {MAX_DISPLACED} of them against their pre-drain ready count (lower batchSize to check all)",
                MAX_DISPLACED + BEYOND
            )
        )]
    );
}

#[test]
fn every_recorded_workload_is_checked_against_its_pre_drain_count() {
    // None of the pods comes back: each recorded workload is one pod short, and counts.
    let (mut w, drained, _) = crowded();
    w.now = at(drained, 299);
    w.step();
    assert_eq!(w.phase(), Phase::Progressing, "readyTimeout is not over");
    w.now = at(drained, 300);
    let d = w.step();
    assert_eq!(w.phase(), Phase::RollingBack);
    let h = w.status().health.clone().unwrap();
    assert_eq!(
        (h.verdict, h.unhealthy_count, h.tolerated_unhealthy),
        (Verdict::Unhealthy, MAX_DISPLACED as u32, 0),
        "every recorded workload, and only those"
    );
    assert!(h.unhealthy.iter().all(|u| u.subject == Subject::Workload));
    let (_, note) = event(&d, reasons::HEALTH_GATE_FAILED);
    assert!(
        note.starts_with(&format!("{MAX_DISPLACED} unhealthy, 0 tolerated")),
        "{note}"
    );
}

#[test]
fn the_last_recorded_workload_not_coming_back_fails_the_gate() {
    let (mut w, drained, _) = crowded();
    // Every pod comes back Ready on the new node but the one of the last recorded workload.
    let missing = name(MAX_DISPLACED - 1);
    let new = new_name(0, 0, 0);
    for i in 0..MAX_DISPLACED + BEYOND {
        if name(i) != missing {
            w.add_pod(pod(&format!("{}-new", name(i)), &new, &name(i), drained));
        }
    }
    w.now = at(drained, 299);
    let d = w.step();
    assert_eq!(events(&d), Vec::<&str>::new());
    let h = w.status().health.clone().unwrap();
    assert_eq!(h.verdict, Verdict::Pending);
    assert_eq!(
        h.waiting_for,
        [format!(
            "ReplicaSet default/{missing} to be back to 1 ready (has 0)"
        )]
    );
    w.now = at(drained, 300);
    let d = w.step();
    assert_eq!(w.phase(), Phase::RollingBack);
    let (_, note) = event(&d, reasons::HEALTH_GATE_FAILED);
    assert_eq!(
        note,
        format!(
            "1 unhealthy, 0 tolerated: ReplicaSet default/{missing} has 0 ready pods 5m after the drain; it had 1 before (health.readyTimeout); workloads hit: ReplicaSet default/{missing}"
        )
    );
}
