//! Maintenance windows: a batch starts only inside one; a batch in flight finishes when its
//! window closes; a rollback is never held; daylight-saving days keep their local hours.

use super::*;
use crate::api::BatchPhase;
use crate::api::condition::reasons as r;

/// A plan with these windows (YAML flow list), no soak unless `extra` says otherwise.
fn windowed(windows: &str, extra: &str) -> NodeUpdatePlan {
    plan_yaml(&format!("  maintenanceWindows: {windows}\n{extra}"))
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// The Progressing condition's reason and message.
fn progressing(w: &World) -> (String, String) {
    let c = cond(w.status(), types::PROGRESSING);
    (c.reason.clone(), c.message.clone())
}

#[test]
fn a_plan_created_outside_its_window_waits_saying_when_it_opens() {
    // t0 is Friday 2026-11-20 10:00 UTC; the window opens Saturday 02:00 in Berlin (01:00 UTC).
    let mut w = World::with_nodes(
        windowed(
            "[{days: [Sat], start: '02:00', end: '04:00', timeZone: Europe/Berlin}]",
            "",
        ),
        2,
    );
    let d = w.step();
    assert_eq!(
        acts(&d),
        Vec::<String>::new(),
        "nothing claimed or provisioned"
    );
    assert_eq!(events(&d), [r::OUTSIDE_MAINTENANCE_WINDOW]);
    assert_eq!(w.phase(), Phase::Pending);
    assert_eq!(w.status().started_at, None);
    let c = assert_cond(
        w.status(),
        types::PROGRESSING,
        "False",
        r::OUTSIDE_MAINTENANCE_WINDOW,
    );
    assert_eq!(
        c.message,
        "not started: waiting for the maintenance window: opens Sat 2026-11-21 02:00 Europe/Berlin (01:00 UTC)"
    );
    assert_eq!(w.status().next_window_at, time(ts("2026-11-21T01:00:00Z")));
    // Looked at again at the opening (15 h later), one second past it.
    assert_eq!(
        d.requeue_after,
        Some(std::time::Duration::from_secs(15 * 3600 + 1))
    );
    assert!(w.obs.nodes.iter().all(|n| n.claimed_by().is_none()));

    // Still closed a second before the opening: the same wait, no new Event.
    w.now = ts("2026-11-21T00:59:59Z");
    let d = w.step();
    assert_idle(&d);
    assert_eq!(w.phase(), Phase::Pending);
    assert_eq!(d.requeue_after, Some(std::time::Duration::from_secs(2)));
}

#[test]
fn inside_its_window_a_waiting_plan_starts() {
    let mut w = World::with_nodes(
        windowed(
            "[{days: [Sat], start: '02:00', end: '04:00', timeZone: Europe/Berlin}]",
            "",
        ),
        2,
    );
    w.step();
    w.now = ts("2026-11-21T01:00:01Z");
    let d = w.step();
    assert_eq!(events(&d), [r::PLAN_STARTED, r::BATCH_STARTED]);
    assert_eq!(
        acts(&d),
        [
            "Claim old-0".to_string(),
            "Claim old-1".into(),
            format!("Provision {} for old-0", new_name(0, 0, 0))
        ]
    );
    assert_eq!(w.phase(), Phase::Progressing);
    assert_eq!(
        w.status().next_window_at,
        None,
        "cleared once the wait is over"
    );
    assert_eq!(progressing(&w).0, r::PROVISIONING);
}

#[test]
fn a_batch_in_flight_when_the_window_closes_finishes_and_the_next_waits() {
    let mut w = World::with_nodes(
        windowed(
            "[{days: [Sat], start: '03:00', end: '04:00'}]",
            "  health: {soak: 0s}",
        ),
        2,
    );
    w.now = ts("2026-11-21T03:59:50Z");
    let d = w.step();
    assert_eq!(events(&d), [r::PLAN_STARTED, r::BATCH_STARTED]);

    // 04:00:10: the window closed while batch 1's new node was coming up.
    w.tick(20);
    w.ready_new_nodes();
    let d = w.step();
    assert_eq!(events(&d), [r::NODES_READY, r::DRAINING]);
    assert_eq!(acts(&d), ["Cordon old-0"]);
    let d = w.step();
    assert_eq!(
        events(&d),
        [
            r::DRAIN_COMPLETED,
            r::HEALTH_GATE_PASSED,
            r::BATCH_COMPLETED,
            r::OUTSIDE_MAINTENANCE_WINDOW
        ]
    );
    assert_eq!(acts(&d), Vec::<String>::new(), "no node for batch 2");
    assert_eq!(w.batch(0).phase, BatchPhase::Completed);
    assert_eq!(w.status().batches.len(), 1);
    assert_eq!(w.phase(), Phase::Progressing);
    assert_eq!(
        progressing(&w),
        (
            r::OUTSIDE_MAINTENANCE_WINDOW.to_string(),
            "1 node left; waiting for the maintenance window: opens Sat 2026-11-28 03:00 UTC"
                .to_string()
        )
    );
    assert_cond(
        w.status(),
        types::PROGRESSING,
        "True",
        r::OUTSIDE_MAINTENANCE_WINDOW,
    );
    assert_eq!(w.status().next_window_at, time(ts("2026-11-28T03:00:00Z")));
    assert!(!w.node("old-1").unschedulable);

    // A week later the window opens and batch 2 starts.
    w.now = ts("2026-11-28T03:00:00Z");
    let d = w.step();
    assert_eq!(events(&d), [r::BATCH_STARTED]);
    assert_eq!(
        acts(&d),
        [format!("Provision {} for old-1", new_name(0, 1, 0))]
    );
    assert_eq!(w.status().next_window_at, None);
}

#[test]
fn a_rollback_is_not_held_by_a_closed_window() {
    let mut w = World::with_nodes(
        windowed(
            "[{days: [Sat], start: '03:00', end: '04:00'}]",
            "  health: {soak: 10m}",
        ),
        2,
    );
    w.now = ts("2026-11-21T03:59:50Z");
    w.step();
    w.tick(20);
    w.ready_new_nodes();
    w.step(); // cordoned
    w.step(); // drained, soaking
    assert_eq!(w.batch(0).phase, BatchPhase::Soaking);

    // Outside the window, the new node fails: the rollback starts at once, old node first.
    w.tick(60);
    w.set_not_ready(&new_name(0, 0, 0));
    w.tick(60); // health.notReadyTimeout: no longer a blip
    let d = w.step();
    assert_eq!(events(&d), [r::NODE_FAILED, r::ROLLBACK_STARTED]);
    assert_eq!(acts(&d).first().map(String::as_str), Some("Uncordon old-0"));
    let decisions = w.drive_until(|w| w.phase() == Phase::RolledBack, 20);
    for d in &decisions {
        let c = crate::engine::status::condition(&d.status, types::PROGRESSING).unwrap();
        assert_ne!(c.reason, r::OUTSIDE_MAINTENANCE_WINDOW, "{}", c.message);
        assert_eq!(d.status.next_window_at, None);
    }
    assert!(!w.has_node(&new_name(0, 0, 0)));
    assert!(w.obs.nodes.iter().all(|n| !n.unschedulable));
    assert!(w.now < ts("2026-11-28T03:00:00Z"), "not a week later");
}

#[test]
fn on_the_spring_forward_day_a_window_opens_when_its_hours_exist() {
    // 2026-03-29 in Berlin: 02:00 CET jumps to 03:00 CEST (01:00 UTC). Of 02:30–03:30 only
    // 03:00–03:30 happens.
    let mut w = World::with_nodes(
        windowed(
            "[{days: [Sun], start: '02:30', end: '03:30', timeZone: Europe/Berlin}]",
            "",
        ),
        1,
    );
    w.now = ts("2026-03-28T12:00:00Z");
    w.step();
    assert_eq!(w.status().next_window_at, time(ts("2026-03-29T01:00:00Z")));
    assert_eq!(
        progressing(&w).1,
        "not started: waiting for the maintenance window: opens Sun 2026-03-29 03:00 Europe/Berlin (01:00 UTC)"
    );

    // 01:59:59 CET: the clock never shows 02:30 today; still waiting.
    w.now = ts("2026-03-29T00:59:59Z");
    assert_idle(&w.step());
    assert_eq!(w.phase(), Phase::Pending);

    w.now = ts("2026-03-29T01:00:00Z");
    let d = w.step();
    assert_eq!(events(&d), [r::PLAN_STARTED, r::BATCH_STARTED]);
}

#[test]
fn on_the_fall_back_day_a_window_in_the_repeated_hour_opens_again() {
    // 2026-10-25 in Berlin: 03:00 CEST falls back to 02:00 CET (01:00 UTC). 02:15–02:45 happens
    // twice; a plan created at 02:50 CEST waits for the second time, not for next Sunday.
    let mut w = World::with_nodes(
        windowed(
            "[{days: [Sun], start: '02:15', end: '02:45', timeZone: Europe/Berlin}]",
            "",
        ),
        1,
    );
    w.now = ts("2026-10-25T00:50:00Z");
    w.step();
    assert_eq!(w.status().next_window_at, time(ts("2026-10-25T01:15:00Z")));
    assert_eq!(
        progressing(&w).1,
        "not started: waiting for the maintenance window: opens Sun 2026-10-25 02:15 Europe/Berlin (01:15 UTC)"
    );
    w.now = ts("2026-10-25T01:15:00Z");
    let d = w.step();
    assert_eq!(events(&d), [r::PLAN_STARTED, r::BATCH_STARTED]);
}

#[test]
fn an_unknown_time_zone_fails_the_plan_naming_the_zone() {
    let mut w = World::with_nodes(
        windowed(
            "[{days: [Sat], start: '02:00', end: '04:00', timeZone: Mars/Olympus_Mons}]",
            "",
        ),
        2,
    );
    let d = w.step();
    assert_eq!(acts(&d), Vec::<String>::new());
    assert_eq!(events(&d), [r::INVALID_SPEC]);
    assert_eq!(w.phase(), Phase::Failed);
    let c = assert_cond(w.status(), types::PROGRESSING, "False", r::INVALID_SPEC);
    assert!(
        c.message
            .contains(r#"spec.maintenanceWindows[0].timeZone is "Mars/Olympus_Mons""#),
        "{}",
        c.message
    );
    assert_cond(w.status(), types::DEGRADED, "True", r::INVALID_SPEC);
    assert_eq!(w.status().next_window_at, None);
}

#[test]
fn an_unknown_time_zone_in_flight_holds_the_plan_where_it_is() {
    let mut w = World::with_nodes(plan_yaml("  health: {soak: 0s}"), 2);
    w.step();
    w.edit(|p| {
        p.spec.maintenance_windows = vec![crate::api::MaintenanceWindow {
            days: vec![crate::api::Weekday::Sat],
            start: "02:00".into(),
            end: "04:00".into(),
            time_zone: "Europe/Berlinn".into(),
        }]
    });
    w.tick(20);
    w.ready_new_nodes();
    let d = w.step();
    assert_eq!(acts(&d), Vec::<String>::new(), "held: no cordon");
    assert_eq!(events(&d), [r::INVALID_SPEC]);
    assert_eq!(w.phase(), Phase::Progressing);
    let c = assert_cond(w.status(), types::DEGRADED, "True", r::INVALID_SPEC);
    assert!(c.message.contains("\"Europe/Berlinn\""), "{}", c.message);
}
