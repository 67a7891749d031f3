//! Property tests: random histories of cluster events, controller restarts and crashes mid-action;
//! invariants 1, 2, 3, 4 and 6 of the product are checked after every step, and every history
//! ends with the plan at a safe resting point once the cluster is left alone. The gate's hard
//! cases (blips, lost readiness, outages that predate the plan) have properties of their own in
//! `gate`.

mod gate;

use super::sim::{Fault, Flap, Outage, Pdb, Reconcile, Sim, Workload};
use super::*;
use crate::api::{Phase, StopPolicy};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use proptest::prelude::*;

/// `health.notReadyTimeout` of the generated plans, in seconds.
const NOT_READY_TIMEOUT: i64 = 60;

/// One thing that can happen to the cluster or the controller.
#[derive(Clone, Debug)]
enum Event {
    /// Time passes.
    Tick(i64),
    /// The controller reconciles and completes.
    Reconcile,
    /// The controller writes status, carries out `n` actions and dies; a new one starts.
    CrashAfter(usize),
    /// The controller dies before writing status.
    CrashBeforeStatus,
    /// A person cordons a node.
    HumanCordon(usize),
    /// A person flips `spec.paused`.
    TogglePause,
    /// A person changes the spec in another way (resumes a stopped plan).
    Touch,
    /// A person makes the spec invalid (as if admission let it through), or fixes it.
    ToggleInvalidSpec,
    /// A new node goes NotReady.
    NewNodeFails(usize),
    /// A workload starts failing everywhere (all its pods).
    Outage(usize),
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        6 => (1i64..120).prop_map(Event::Tick),
        8 => Just(Event::Reconcile),
        2 => (0usize..6).prop_map(Event::CrashAfter),
        1 => Just(Event::CrashBeforeStatus),
        1 => (0usize..8).prop_map(Event::HumanCordon),
        1 => Just(Event::TogglePause),
        1 => Just(Event::Touch),
        1 => Just(Event::ToggleInvalidSpec),
        1 => (0usize..4).prop_map(Event::NewNodeFails),
        1 => (0usize..3).prop_map(Event::Outage),
    ]
}

#[derive(Clone, Debug)]
struct World {
    nodes: usize,
    batch: IntOrString,
    canary: Option<i32>,
    blue_green: bool,
    halt: bool,
    fault: Fault,
    control_plane: bool,
    /// Workload `outage` is short of Ready pods before the plan starts: it has `.0` replicas, of
    /// which `.1` are never Ready, wherever they run (all of them when `.1 >= .0`).
    outage: Option<(i32, i32)>,
    /// The outage's workload has a PDB that allows one disruption (when it has pods to spare).
    outage_pdb: bool,
    /// The provider names new nodes itself instead of after their slots.
    generated_names: bool,
}

/// Readiness lost `times` times for `down` seconds, after `up` seconds Ready each time.
fn flap(down: std::ops::Range<i64>) -> impl Strategy<Value = Flap> {
    (1u32..=3, 5i64..=90, down, any::<bool>()).prop_map(|(times, up, down, everywhere)| Flap {
        times,
        up,
        down,
        everywhere,
    })
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        3 => Just(Fault::None),
        3 => Just(Fault::PodsNeverReady),
        3 => Just(Fault::CrashLoop),
        3 => Just(Fault::NodeNeverReady),
        2 => flap(1..NOT_READY_TIMEOUT).prop_map(Fault::Flaps),
        1 => flap(2 * NOT_READY_TIMEOUT..1_000).prop_map(Fault::Flaps),
    ]
}

/// Replicas of an outage's workload, and how many of them are never Ready (1 to all).
fn outage() -> impl Strategy<Value = (i32, i32)> {
    (1i32..=6).prop_flat_map(|n| (Just(n), 1..=n))
}

fn world() -> impl Strategy<Value = World> {
    (
        (
            2usize..8,
            prop_oneof![
                (1i32..4).prop_map(IntOrString::Int),
                (1u32..60).prop_map(|p| IntOrString::String(format!("{p}%")))
            ],
            proptest::option::of(1i32..3),
            any::<bool>(),
            any::<bool>(),
        ),
        (
            fault(),
            any::<bool>(),
            proptest::option::of(outage()),
            any::<bool>(),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (nodes, batch, canary, blue_green, halt),
                (fault, control_plane, outage, outage_pdb, generated_names),
            )| World {
                nodes,
                batch,
                canary,
                blue_green,
                halt,
                fault,
                control_plane,
                outage,
                outage_pdb,
                generated_names,
            },
        )
}

fn build(w: &World) -> Sim {
    let mut p = plan();
    p.spec.strategy.batch_size = w.batch.clone();
    p.spec.strategy.canary = w.canary.map(|nodes| crate::api::Canary { nodes });
    p.spec.strategy.blue_green = w.blue_green;
    p.spec.health.soak = std::time::Duration::from_secs(60).into();
    p.spec.health.ready_timeout = std::time::Duration::from_secs(120).into();
    p.spec.health.not_ready_timeout =
        std::time::Duration::from_secs(NOT_READY_TIMEOUT as u64).into();
    p.spec.health.node_ready_timeout = std::time::Duration::from_secs(120).into();
    p.spec.drain.timeout = std::time::Duration::from_secs(600).into();
    if w.halt {
        p.spec.on_failure = StopPolicy::Halt;
    }
    let mut sim = Sim::new(p, w.nodes);
    sim.fault = w.fault;
    sim.generated_names = w.generated_names;
    if w.control_plane {
        sim.nodes.push(control_plane("cp-0"));
    }
    if let Some((replicas, down)) = w.outage {
        sim.workloads.push(Workload {
            outage: if down >= replicas {
                Outage::All
            } else {
                Outage::Pods(down)
            },
            ..Workload::replica_set("outage", replicas)
        });
        if w.outage_pdb && replicas - down > 1 {
            sim.pdbs.push(Pdb {
                name: "outage-pdb".into(),
                app: "outage".into(),
                min_available: replicas - down - 1,
            });
        }
        // Its pods are created and scheduled, and the healthy ones get Ready, before the plan
        // first looks: the outage is what is left.
        sim.tick(1);
        sim.tick(15);
    }
    sim
}

fn apply(sim: &mut Sim, e: &Event) {
    match e {
        Event::Tick(s) => sim.tick(*s),
        Event::Reconcile => {
            sim.reconcile(Reconcile::Complete);
        }
        Event::CrashAfter(n) => {
            sim.reconcile(Reconcile::CrashAfter(*n));
        }
        Event::CrashBeforeStatus => {
            sim.reconcile(Reconcile::CrashBeforeStatus);
        }
        Event::HumanCordon(i) => {
            let name = format!("old-{i}");
            if let Some(n) = sim.nodes.iter_mut().find(|n| n.name == name)
                && !n.unschedulable
            {
                n.unschedulable = true;
                sim.human_cordoned.insert(name);
            }
        }
        Event::TogglePause => sim.edit_spec(|p| p.spec.paused = !p.spec.paused),
        Event::Touch => sim.edit_spec(|p| {
            p.spec.health.max_restarts += 1;
        }),
        Event::ToggleInvalidSpec => sim.edit_spec(|p| {
            p.spec.health.max_restarts = if p.spec.health.max_restarts < 0 {
                3
            } else {
                -1
            };
        }),
        Event::NewNodeFails(i) => {
            let target = sim.target();
            let new: Vec<String> = sim
                .nodes
                .iter()
                .filter(|n| image(n) == Some(target.as_str()))
                .map(|n| n.name.clone())
                .collect();
            if let Some(name) = new.get(*i)
                && let Some(n) = sim.nodes.iter_mut().find(|n| &n.name == name)
            {
                n.readiness = crate::engine::observed::NodeReadiness::NotReady;
                n.readiness_since = Some(sim.now);
            }
        }
        Event::Outage(i) => {
            if let Some(w) = sim.workloads.get_mut(*i) {
                w.outage = Outage::All;
            }
        }
    }
}

/// Leave the cluster alone (no faults added, plan unpaused) and let the controller work.
fn settle(sim: &mut Sim) {
    if sim.plan.spec.health.max_restarts < 0 {
        sim.edit_spec(|p| p.spec.health.max_restarts = 3);
    }
    if sim.plan.spec.paused {
        sim.edit_spec(|p| p.spec.paused = false);
    }
    sim.run_until(
        &[
            Phase::Succeeded,
            Phase::RolledBack,
            Phase::Halted,
            Phase::Failed,
        ],
        2000,
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, max_shrink_iters: 2000, ..ProptestConfig::default() })]

    /// Invariants 1, 2, 3, 4 and 6 hold after every event of any history, including restarts that
    /// see only what status and node annotations kept, and crashes between status and actions.
    #[test]
    fn invariants_hold_through_random_histories(w in world(), events in proptest::collection::vec(event(), 1..120)) {
        let mut sim = build(&w);
        for e in &events {
            apply(&mut sim, e);
            prop_assert!(sim.violations.is_empty(), "after {e:?}: {:?}", sim.violations);
        }
        settle(&mut sim);
        prop_assert!(sim.violations.is_empty(), "while settling: {:?}", sim.violations);
        // A settled plan is at rest in a phase a person can act on, or waits on a PDB it names
        // (molt never breaks a budget, not even to roll back).
        let phase = sim.phase();
        let status = sim.plan.status.clone().unwrap_or_default();
        let waits_on_pdb = phase == Phase::RollingBack && status.blockers.iter().any(|b| b.reason.contains("PDB"));
        prop_assert!(
            matches!(phase, Phase::Succeeded | Phase::RolledBack | Phase::Halted) || waits_on_pdb,
            "did not settle: {phase:?}: {:?}", status.message
        );
        if phase == Phase::RolledBack {
            let me = "workers-v2";
            prop_assert!(sim.nodes.iter().all(|n| n.cordoned_by() != Some(me)), "rolled back with nodes still cordoned");
        }
        // Deleting the plan leaves no node cordoned by molt, whatever state it was in.
        sim.delete_plan();
        prop_assert!(sim.violations.is_empty(), "after deletion: {:?}", sim.violations);
        prop_assert!(sim.nodes.iter().all(|n| !n.unschedulable || sim.human_cordoned.contains(&n.name)));
    }

    /// Without faults, interruptions or edits, every plan succeeds and leaves every workload Ready on new nodes.
    #[test]
    fn a_healthy_image_always_succeeds(mut w in world(), crashes in proptest::collection::vec(0usize..5, 0..30)) {
        w.fault = Fault::None;
        w.outage = None;
        let mut sim = build(&w);
        // Crash the controller at random points on the way; the end state must not change.
        for c in crashes {
            sim.reconcile(Reconcile::CrashAfter(c));
            sim.tick(7);
        }
        prop_assert!(sim.run_until(&[Phase::Succeeded], 3000), "phase {:?}: {:?}", sim.phase(),
            sim.plan.status.as_ref().and_then(|s| s.message.clone()));
        prop_assert!(sim.violations.is_empty(), "{:?}", sim.violations);
        let target = sim.target();
        prop_assert!(sim.nodes.iter().filter(|n| !n.is_control_plane()).all(|n| image(n) == Some(target.as_str())));
        prop_assert!(sim.nodes.iter().all(|n| !n.unschedulable));
        sim.tick(30);
        prop_assert!(sim.workloads_ready());
    }

    /// A bad image is always caught and, with onFailure: Rollback, fully undone: old nodes in
    /// service, new nodes gone, workloads Ready.
    #[test]
    fn a_bad_image_is_rolled_back(mut w in world()) {
        w.halt = false;
        w.outage = None;
        w.blue_green = true;
        if matches!(w.fault, Fault::None | Fault::Flaps(_)) {
            w.fault = Fault::CrashLoop;
        }
        let mut sim = build(&w);
        prop_assert!(sim.run_until(&[Phase::RolledBack], 3000), "phase {:?}: {:?}", sim.phase(),
            sim.plan.status.as_ref().and_then(|s| s.message.clone()));
        prop_assert!(sim.violations.is_empty(), "{:?}", sim.violations);
        let target = sim.target();
        prop_assert!(sim.nodes.iter().all(|n| image(n) != Some(target.as_str())), "new nodes left behind");
        prop_assert!(sim.nodes.iter().all(|n| !n.unschedulable));
        prop_assert_eq!(sim.nodes.iter().filter(|n| !n.is_control_plane()).count(), w.nodes);
        sim.tick(30);
        prop_assert!(sim.workloads_ready());
    }
}

/// The model's checks can fail: each violation, committed by hand, is reported.
#[test]
fn the_model_reports_each_kind_of_violation() {
    use crate::engine::Action;
    let evict = |p: &crate::engine::observed::PodView| Action::Evict {
        namespace: p.namespace.clone(),
        pod: p.name.clone(),
        uid: p.uid.clone(),
        node: p.node.clone(),
        grace_period_seconds: None,
    };

    // Invariant 1: web has 3 Ready pods and minAvailable 2, so a second eviction is forbidden.
    let mut sim = Sim::new(plan(), 3);
    let webs: Vec<_> = sim
        .pods
        .iter()
        .filter(|p| p.labels.get("app").map(String::as_str) == Some("web"))
        .cloned()
        .collect();
    sim.execute(&evict(&webs[0]));
    assert!(sim.violations.is_empty());
    sim.execute(&evict(&webs[1]));
    assert!(
        sim.violations.iter().any(|v| v.contains("invariant 1")),
        "{:?}",
        sim.violations
    );

    // Invariant 3: a node a person cordoned is not molt's to uncordon.
    let mut sim = Sim::new(plan(), 3);
    sim.nodes[0].unschedulable = true;
    sim.human_cordoned.insert("old-0".into());
    sim.execute(&Action::Uncordon {
        node: "old-0".into(),
    });
    assert!(
        sim.violations.iter().any(|v| v.contains("invariant 3")),
        "{:?}",
        sim.violations
    );

    // Invariant 2: with batch size 1, two old nodes cordoned by molt and not replaced.
    let mut sim = Sim::new(plan(), 3);
    sim.execute(&Action::Cordon {
        node: "old-0".into(),
    });
    sim.execute(&Action::Cordon {
        node: "old-1".into(),
    });
    sim.tick(1);
    assert!(
        sim.violations.iter().any(|v| v.contains("invariant 2")),
        "{:?}",
        sim.violations
    );

    // Invariant 6: a control-plane node removed.
    let mut sim = Sim::new(plan(), 2);
    sim.nodes.push(control_plane("cp-0"));
    sim.execute(&Action::RemoveNode {
        node: "cp-0".into(),
    });
    assert!(
        sim.violations.iter().any(|v| v.contains("invariant 6")),
        "{:?}",
        sim.violations
    );

    // Invariant 4: a provision after a stop decision.
    let mut w = World {
        nodes: 2,
        batch: IntOrString::Int(1),
        canary: None,
        blue_green: true,
        halt: true,
        fault: Fault::PodsNeverReady,
        control_plane: false,
        outage: None,
        outage_pdb: false,
        generated_names: false,
    };
    w.halt = true;
    let mut sim = build(&w);
    assert!(sim.run_until(&[Phase::Halted], 500));
    assert!(sim.violations.is_empty(), "{:?}", sim.violations);
    let old = sim
        .nodes
        .iter()
        .find(|n| n.name == "old-1")
        .cloned()
        .unwrap();
    sim.execute(&Action::Provision(crate::engine::scope::replacement(
        &sim.plan,
        &old,
        "extra".into(),
        9,
    )));
    assert!(
        sim.violations.iter().any(|v| v.contains("invariant 4")),
        "{:?}",
        sim.violations
    );
}
