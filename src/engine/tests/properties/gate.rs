//! Property tests of the gate on the hard cases: readiness that comes back within
//! `notReadyTimeout` (a blip) against readiness lost for longer (a failure), and outages that
//! predate the plan against failures of the same workloads. Each history crashes the controller
//! at random in its first rounds and wakes it at random before its requeue, as watch events do.

use super::*;
use crate::api::condition::reasons;

/// How many histories each property runs.
const CASES: u32 = 500;

/// The controller's side of a history: how it dies in its first rounds (after so many actions),
/// and how soon a watch event wakes it in each round (at most; cycled).
fn controller() -> impl Strategy<Value = (Vec<Option<usize>>, Vec<i64>)> {
    (
        proptest::collection::vec(proptest::option::weighted(0.3, 0usize..6), 0..40),
        proptest::collection::vec(1i64..60, 1..8),
    )
}

/// The Events of the stops seen: failed gates, failed nodes, timed-out drains.
fn stops(sim: &Sim) -> Vec<String> {
    sim.events
        .iter()
        .filter(|(r, _)| {
            [
                reasons::HEALTH_GATE_FAILED,
                reasons::NODE_FAILED,
                reasons::DRAIN_TIMEOUT,
                reasons::ROLLBACK_STARTED,
                reasons::HALTED,
            ]
            .contains(&r.as_str())
        })
        .map(|(r, note)| format!("{r}: {note}"))
        .collect()
}

fn message(sim: &Sim) -> Option<String> {
    sim.plan.status.as_ref().and_then(|s| s.message.clone())
}

/// Rolling back, held by a PodDisruptionBudget it names.
fn waits_on_pdb(sim: &Sim) -> bool {
    sim.phase() == Phase::RollingBack
        && sim
            .plan
            .status
            .as_ref()
            .is_some_and(|s| s.blockers.iter().any(|b| b.reason.contains("PDB")))
}

/// Run the plan to a resting phase, the controller behaving as `crashes` and `wakes` say.
fn run(sim: &mut Sim, crashes: &[Option<usize>], wakes: &[i64]) {
    let stopped = [
        Phase::Succeeded,
        Phase::RollingBack,
        Phase::RolledBack,
        Phase::Halted,
    ];
    if sim.run_until_with(&stopped, 3000, crashes, wakes) && sim.phase() == Phase::RollingBack {
        sim.run_until_with(&[Phase::RolledBack], 300, &[], wakes);
    }
}

/// The world of a gate property: as [`build`] makes it, with the default `nodeReadyTimeout`
/// (ten minutes), so that a node request lost in a run of crashes is not timed out.
fn build_gate(w: &World) -> Sim {
    let mut sim = build(w);
    sim.plan.spec.health.node_ready_timeout = std::time::Duration::from_secs(600).into();
    sim
}

/// A partial outage: 2 to 6 replicas, 1 to all but one of them never Ready.
fn partial_outage() -> impl Strategy<Value = (i32, i32)> {
    (2i32..=6).prop_flat_map(|n| (Just(n), 1..n))
}

fn partial_outage_with_a_healthy_image(
    mut w: World,
    outage: (i32, i32),
    crashes: &[Option<usize>],
    wakes: &[i64],
) -> Result<(), TestCaseError> {
    w.fault = Fault::None;
    w.outage = Some(outage);
    let mut sim = build_gate(&w);
    let before = sim.ready_pods("outage");
    prop_assert_eq!(before, outage.0 - outage.1);
    run(&mut sim, crashes, wakes);
    prop_assert_eq!(sim.phase(), Phase::Succeeded, "{:?}", message(&sim));
    prop_assert!(stops(&sim).is_empty(), "{:?}", stops(&sim));
    prop_assert!(sim.violations.is_empty(), "{:?}", sim.violations);
    sim.tick(30);
    let after = sim.ready_pods("outage");
    prop_assert!(after >= before, "{after} Ready, {before} before");
    prop_assert!(sim.workloads_ready());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, max_shrink_iters: 2000, ..ProptestConfig::default() })]

    /// Pods on new nodes (or every pod, all at once) that lose readiness for less than
    /// `notReadyTimeout` and regain it are blips: a healthy image still reaches Succeeded, with
    /// no stop on the way.
    #[test]
    fn readiness_that_comes_back_within_not_ready_timeout_never_fails_a_healthy_image(
        mut w in world(),
        flap in flap(1..NOT_READY_TIMEOUT),
        (crashes, wakes) in controller(),
    ) {
        w.fault = Fault::Flaps(flap);
        w.outage = None;
        let mut sim = build_gate(&w);
        run(&mut sim, &crashes, &wakes);
        prop_assert_eq!(sim.phase(), Phase::Succeeded, "{:?}", message(&sim));
        prop_assert!(stops(&sim).is_empty(), "{:?}", stops(&sim));
        prop_assert!(sim.violations.is_empty(), "{:?}", sim.violations);
        // Once the last pods that landed are done flapping, every workload is Ready.
        sim.tick(600);
        prop_assert!(sim.workloads_ready());
    }

    /// Pods on new nodes that became Ready and then lose readiness for longer than
    /// `notReadyTimeout` fail the gate: the plan rolls back or halts, as `onFailure` says. With a
    /// short `readyTimeout` the loss outlasts the pod's start-up grace, so only `notReadyTimeout`
    /// can catch it; with a long one the start-up grace does.
    #[test]
    fn readiness_lost_for_longer_than_not_ready_timeout_fails_the_gate(
        mut w in world(),
        times in 1u32..=2,
        up in 1i64..50,
        down in prop_oneof![2 * NOT_READY_TIMEOUT..1_000, Just(1_000_000)],
        short_ready_timeout in any::<bool>(),
        (crashes, wakes) in controller(),
    ) {
        w.fault = Fault::Flaps(Flap { times, up, down, everywhere: false });
        w.outage = None;
        let mut sim = build_gate(&w);
        if short_ready_timeout {
            sim.plan.spec.health.ready_timeout = std::time::Duration::from_secs(30).into();
        }
        run(&mut sim, &crashes, &wakes);
        let want = if w.halt { Phase::Halted } else { Phase::RolledBack };
        // Pods that were Ready all moved and lost readiness: a budget may forbid evicting them
        // from the new nodes, and molt never breaks one, not even to roll back.
        prop_assert!(sim.phase() == want || waits_on_pdb(&sim), "{:?}: {:?}", sim.phase(), message(&sim));
        let failure = sim.plan.status.as_ref().and_then(|s| s.failure.clone());
        prop_assert!(
            failure.as_ref().is_some_and(|f| f.reason == reasons::HEALTH_GATE_FAILED
                && f.message.contains("not Ready")
                && (!short_ready_timeout || f.message.contains("(health.notReadyTimeout)"))),
            "{failure:?}"
        );
        prop_assert!(sim.violations.is_empty(), "{:?}", sim.violations);
        if w.blue_green && sim.phase() == Phase::RolledBack {
            sim.tick(30);
            prop_assert!(sim.workloads_ready(), "the pods are back on the old nodes");
        }
    }

    /// A workload already short of Ready pods before the plan, with a healthy image, in one
    /// batch: its unhealthy pods move to the new nodes (whichever nodes they were on) and trip
    /// nothing, the plan succeeds, and the workload ends with as many Ready pods as it had.
    #[test]
    fn a_partial_outage_before_the_plan_does_not_trip_the_gate_in_one_batch(
        mut w in world(),
        outage in partial_outage(),
        (crashes, wakes) in controller(),
    ) {
        w.batch = IntOrString::String("100%".into());
        w.canary = None;
        partial_outage_with_a_healthy_image(w, outage, &crashes, &wakes)?;
    }

    /// As above, over any batches: a later batch evicts healthy pods of the workload while
    /// broken ones wait, excused, on earlier new nodes.
    #[test]
    fn a_partial_outage_before_the_plan_does_not_trip_the_gate(
        w in world(),
        outage in partial_outage(),
        (crashes, wakes) in controller(),
    ) {
        partial_outage_with_a_healthy_image(w, outage, &crashes, &wakes)?;
    }

    /// A bad image that breaks only the workload already short before the plan (its pods never
    /// get Ready on new nodes): the outage does not hide the failure, the plan rolls back naming
    /// the workload, and the workload is back to the Ready pods it had.
    #[test]
    fn a_partial_outage_does_not_hide_a_bad_image(
        mut w in world(),
        outage in partial_outage(),
        everything in proptest::bool::weighted(0.2),
        (crashes, wakes) in controller(),
    ) {
        w.fault = Fault::PodsNeverReady;
        w.outage = Some(outage);
        w.halt = false;
        w.blue_green = true;
        let mut sim = build_gate(&w);
        if !everything {
            sim.fault_only = Some("outage".into());
        }
        let before = sim.ready_pods("outage");
        run(&mut sim, &crashes, &wakes);
        prop_assert_eq!(sim.phase(), Phase::RolledBack, "{:?}", message(&sim));
        let failure = sim.plan.status.as_ref().and_then(|s| s.failure.clone());
        prop_assert!(
            failure.as_ref().is_some_and(|f| f.reason == reasons::HEALTH_GATE_FAILED
                && (everything || f.message.contains("ReplicaSet default/outage"))),
            "{failure:?}"
        );
        prop_assert!(sim.violations.is_empty(), "{:?}", sim.violations);
        sim.tick(30);
        prop_assert!(sim.ready_pods("outage") >= before, "{} Ready, {before} before", sim.ready_pods("outage"));
        prop_assert!(sim.workloads_ready());
    }
}
