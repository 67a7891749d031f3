//! Two plans over the same pool, applied in the same instant, reconciled by one controller in
//! any interleaving, with crashes between status and actions: exactly one of them ever holds a
//! node, neither touches a node the other holds, and both end `Succeeded`, one after the other.

use super::sim::{Reconcile, Sim};
use super::*;
use crate::api::Phase;
use proptest::prelude::*;

fn rivals(nodes: usize, generated_names: bool) -> Sim {
    let mut sim = Sim::new(plan(), nodes);
    sim.generated_names = generated_names;
    let mut rival = plan();
    rival.metadata.name = Some("workers-v3".into());
    rival.metadata.uid = Some("9d1e0c44-0000-0000-0000-000000000000".into());
    rival.spec.target.image = "v3".into();
    // Created in the same second: the names decide which one came first.
    sim.rival = Some((rival, None));
    sim
}

fn phases(sim: &Sim) -> (Phase, Phase) {
    let rival = sim
        .rival
        .as_ref()
        .and_then(|(r, _)| r.status.as_ref())
        .and_then(|s| s.phase)
        .unwrap_or(Phase::Pending);
    (sim.phase(), rival)
}

fn how(n: u8) -> Reconcile {
    match n % 3 {
        0 => Reconcile::Complete,
        1 => Reconcile::CrashAfter(usize::from(n / 3)),
        _ => Reconcile::CrashBeforeStatus,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn plans_applied_together_take_turns(
        nodes in 2usize..6,
        generated_names in any::<bool>(),
        steps in proptest::collection::vec((0u8..3, 0u8..9, 1i64..40), 1..80),
    ) {
        let mut sim = rivals(nodes, generated_names);
        for (who, kind, secs) in steps {
            match who {
                0 => {
                    sim.reconcile(how(kind));
                }
                1 => {
                    sim.reconcile_rival(how(kind));
                }
                _ => sim.tick(secs),
            }
            prop_assert!(sim.violations.is_empty(), "{:?}", sim.violations);
        }
        // Left alone, the controller reconciles both until both are done.
        for _ in 0..2000 {
            if phases(&sim) == (Phase::Succeeded, Phase::Succeeded) {
                break;
            }
            sim.reconcile(Reconcile::Complete);
            sim.reconcile_rival(Reconcile::Complete);
            sim.tick(5);
        }
        prop_assert!(sim.violations.is_empty(), "{:?}", sim.violations);
        prop_assert_eq!(phases(&sim), (Phase::Succeeded, Phase::Succeeded));
        let mine = sim.plan.status.clone().unwrap_or_default();
        let theirs = sim.rival.as_ref().and_then(|(r, _)| r.status.clone()).unwrap_or_default();
        let (first, second) = if mine.completed_at <= theirs.completed_at {
            (&mine, &theirs)
        } else {
            (&theirs, &mine)
        };
        prop_assert!(
            second.started_at >= first.completed_at,
            "both ran at once: {:?} started before {:?} completed",
            second.started_at,
            first.completed_at
        );
        // Every node ends on the image of the plan that finished last.
        let last = if second.target_image.as_deref() == Some("v3") { "v3" } else { "v2" };
        prop_assert!(
            sim.nodes.iter().filter(|n| !n.is_control_plane()).all(|n| image(n) == Some(last)),
            "{:?}",
            sim.nodes.iter().map(|n| (&n.name, image(n))).collect::<Vec<_>>()
        );
    }
}
