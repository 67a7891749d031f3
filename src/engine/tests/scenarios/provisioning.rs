//! Provisioning: what a new node is made of, waiting for it, and giving up on it.

use super::*;
use crate::api::condition::reasons;
use crate::api::{BatchPhase, KwokProvider, NodeTemplate, Verdict};
use crate::engine::NewNode;
use k8s_openapi::api::core::v1::Taint;

fn taint(key: &str, value: Option<&str>, effect: &str) -> Taint {
    Taint {
        key: key.into(),
        value: value.map(Into::into),
        effect: effect.into(),
        time_added: None,
    }
}

#[test]
fn a_new_node_copies_the_node_it_replaces_plus_the_template_and_the_image() {
    let mut p = plan();
    p.spec.provider.kwok = Some(KwokProvider {
        node_template: NodeTemplate {
            labels: [
                ("zone".to_string(), "b".to_string()),
                ("tier".to_string(), "fresh".to_string()),
            ]
            .into(),
            taints: vec![
                taint("molt.dev/warming", None, "NoSchedule"),
                taint("dedicated", Some("db"), "NoSchedule"),
            ],
        },
        ..Default::default()
    });
    let mut old = node("old-0");
    old.labels.insert("zone".into(), "a".into());
    old.labels.insert("disk".into(), "ssd".into());
    old.taints = vec![
        taint("dedicated", Some("db"), "NoSchedule"),
        // Taints the node lifecycle controller manages describe the old machine's state: not copied.
        taint("node.kubernetes.io/unschedulable", None, "NoSchedule"),
        taint(
            "node.cloudprovider.kubernetes.io/uninitialized",
            Some("true"),
            "NoSchedule",
        ),
    ];
    old.capacity.insert("memory".into(), "16Gi".into());
    let mut w = World::new(p, vec![old]);
    let d = w.decide();
    let provisions: Vec<&NewNode> = d
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Provision(n) => Some(n),
            _ => None,
        })
        .collect();
    let labels = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert_eq!(
        provisions,
        [&NewNode {
            slot: new_name(0, 0, 0),
            generate_name: false,
            name: new_name(0, 0, 0),
            image: "v2".into(),
            replaces: "old-0".into(),
            labels: labels(&[
                ("disk", "ssd"),
                ("molt.dev/image-hash", "08cf0e07b5709641"),
                ("molt.dev/plan", ME),
                ("molt.dev/slot", &new_name(0, 0, 0)),
                ("pool", "workers"),
                ("tier", "fresh"),
                ("zone", "b"),
            ]),
            annotations: labels(&[
                ("molt.dev/batch", "0"),
                ("molt.dev/claimed-by", ME),
                ("molt.dev/image", "v2"),
                ("molt.dev/replaces", "old-0")
            ]),
            taints: vec![
                taint("dedicated", Some("db"), "NoSchedule"),
                taint("molt.dev/warming", None, "NoSchedule")
            ],
            capacity: labels(&[("cpu", "4"), ("memory", "16Gi"), ("pods", "110")]),
            allocatable: labels(&[("cpu", "4"), ("pods", "110")]),
        }]
    );
}

#[test]
fn the_batch_waits_for_its_new_nodes_to_be_ready() {
    let mut w = World::with_nodes(plan(), 1);
    w.add_pod(pod("web-0", "old-0", "web", t0()));
    w.step();
    w.tick(10);
    let d = w.step();
    assert_eq!(
        acts(&d),
        Vec::<String>::new(),
        "no cordon before the new node is Ready"
    );
    assert_eq!(events(&d), Vec::<&str>::new());
    assert_eq!(w.phase(), Phase::Progressing);
    assert_eq!(w.batch(0).phase, BatchPhase::Provisioning);
    assert_eq!(w.batch(0).ready_at, None);
    let c = assert_cond(
        w.status(),
        types::PROGRESSING,
        "True",
        reasons::PROVISIONING,
    );
    assert!(
        c.message
            .contains(&format!("0/1 new nodes Ready ({})", new_name(0, 0, 0))),
        "{}",
        c.message
    );
    let h = w.status().health.as_ref().unwrap();
    assert_eq!(h.verdict, Verdict::Pending);
    assert_eq!(
        h.waiting_for,
        [format!("new node {} to become Ready", new_name(0, 0, 0))]
    );
    assert_cond(
        w.status(),
        types::HEALTHY,
        "Unknown",
        reasons::HEALTH_PENDING,
    );
    assert!(!w.node("old-0").unschedulable);

    w.tick(10);
    w.set_ready(&new_name(0, 0, 0));
    let d = w.decide();
    assert_eq!(events(&d), [reasons::NODES_READY, reasons::DRAINING]);
    assert_eq!(acts(&d), ["Cordon old-0", "Evict default/web-0"]);
    let b = w.batch(0);
    assert_eq!(b.phase, BatchPhase::Draining);
    assert_eq!(
        (b.ready_at.clone(), b.drain_started_at.clone()),
        (time(w.now), time(w.now))
    );
}

fn never_ready(on_failure: &str) -> (World, Decision) {
    let mut w = World::with_nodes(plan_yaml(&format!("  onFailure: {on_failure}")), 1);
    w.add_pod(pod("web-0", "old-0", "web", t0()));
    w.step();
    // nodeReadyTimeout is 10m, counted from the request.
    w.tick(599);
    let d = w.step();
    assert_eq!(w.phase(), Phase::Progressing, "{:?}", d);
    w.tick(1);
    let d = w.step();
    (w, d)
}

#[test]
fn a_new_node_not_ready_in_time_rolls_the_batch_back() {
    let (mut w, d) = never_ready("Rollback");
    let new = new_name(0, 0, 0);
    assert_eq!(w.phase(), Phase::RollingBack);
    assert_eq!(
        events(&d),
        [reasons::NODE_FAILED, reasons::ROLLBACK_STARTED]
    );
    let (kind, note) = event(&d, reasons::NODE_FAILED);
    assert_eq!(kind, EventType::Warning);
    assert!(
        note.contains(&format!(
            "new node {new} not Ready 10m after it was requested"
        )),
        "{note}"
    );
    // The old node was never cordoned: only the new node is taken down.
    assert_eq!(
        acts(&d),
        [format!("Cordon {new}"), format!("RemoveSlot {new}")]
    );
    let f = w.status().failure.clone().unwrap();
    assert_eq!(
        (f.reason.as_str(), f.batch, f.at),
        (reasons::NODE_FAILED, Some(0), Time(w.now))
    );
    let c = assert_cond(w.status(), types::DEGRADED, "True", reasons::NODE_FAILED);
    assert!(
        c.message.contains("health.nodeReadyTimeout"),
        "{}",
        c.message
    );
    assert_cond(
        w.status(),
        types::HEALTHY,
        "False",
        reasons::HEALTH_GATE_FAILED,
    );

    w.tick(5);
    let d = w.step();
    assert_eq!(w.phase(), Phase::RolledBack);
    assert_eq!(acts(&d), ["Release old-0"]);
    assert_eq!(events(&d), [reasons::ROLLED_BACK]);
    assert_eq!(w.batch(0).phase, BatchPhase::RolledBack);
    assert_eq!(w.batch(0).completed_at, time(w.now));
    assert!(!w.has_node(&new));
    assert!(!w.node("old-0").unschedulable && w.node("old-0").claimed_by().is_none());
    assert_cond(w.status(), types::COMPLETE, "True", reasons::ROLLED_BACK);
    assert_cond(w.status(), types::DEGRADED, "True", reasons::NODE_FAILED);
}

#[test]
fn a_new_node_not_ready_in_time_halts_with_on_failure_halt() {
    let (mut w, d) = never_ready("Halt");
    assert_eq!(w.phase(), Phase::Halted);
    assert_eq!(events(&d), [reasons::NODE_FAILED, reasons::HALTED]);
    assert_eq!(
        acts(&d),
        Vec::<String>::new(),
        "a halt leaves every node as it is"
    );
    assert_cond(w.status(), types::DEGRADED, "True", reasons::NODE_FAILED);
    assert_cond(w.status(), types::PROGRESSING, "False", reasons::HALTED);
    assert!(w.has_node(&new_name(0, 0, 0)));

    // The node turning Ready later changes nothing while the spec stays the same.
    w.tick(60);
    w.ready_new_nodes();
    let d = w.step();
    assert_idle(&d);
    assert_eq!(w.phase(), Phase::Halted);
}

#[test]
fn a_provider_that_never_creates_the_node_fails_the_batch() {
    let mut w = World::with_nodes(plan(), 1);
    let mut d = w.decide();
    d.actions.retain(|a| !matches!(a, Action::Provision(_))); // the provider never creates the node
    w.apply(&d);
    w.tick(600);
    let d = w.step();
    // Nothing to undo: rolled back at once.
    assert_eq!(
        events(&d),
        [
            reasons::NODE_FAILED,
            reasons::ROLLBACK_STARTED,
            reasons::ROLLED_BACK
        ]
    );
    let (_, note) = event(&d, reasons::NODE_FAILED);
    assert!(
        note.contains("not created 10m after it was requested"),
        "{note}"
    );
    assert_eq!(w.phase(), Phase::RolledBack);
    assert_eq!(acts(&d), ["Release old-0"]);
}

#[test]
fn a_node_the_provider_named_itself_fills_its_slot() {
    use crate::engine::observed::{SlotState, SlotView};
    let mut w = World::with_nodes(plan(), 1);
    w.add_pod(pod("web-0", "old-0", "web", t0()));
    w.workload("web", 1);
    let slot = new_name(0, 0, 0);
    let d = w.decide();
    let Some(Action::Provision(asked)) = d
        .actions
        .iter()
        .find(|a| matches!(a, Action::Provision(_)))
        .cloned()
    else {
        panic!("a Provision action: {:?}", acts(&d));
    };
    w.apply(&Decision {
        actions: vec![],
        ..d
    });
    assert_eq!(asked.slot, slot);

    // The provider is making a machine for the slot: it is not asked again.
    w.reported.insert(
        slot.clone(),
        SlotView {
            node: None,
            state: SlotState::Provisioning,
        },
    );
    w.tick(5);
    let d = w.step();
    assert_eq!(acts(&d), Vec::<String>::new());

    // Its node has a name of the provider's choosing, and none of molt's annotations.
    let name = "md-0-xzr54-hl6gv";
    let mut n = node(name);
    n.labels = asked.labels.clone();
    n.labels.remove(keys::SLOT_LABEL);
    n.annotations = asked.annotations.clone();
    n.annotations.remove(keys::CLAIMED_BY_ANNOTATION);
    w.obs.nodes.push(n);
    w.obs.pods_observed_on.insert(name.into());
    w.reported.insert(
        slot.clone(),
        SlotView {
            node: Some(name.into()),
            state: SlotState::Ready,
        },
    );
    w.tick(5);
    let d = w.step();
    assert_eq!(
        acts(&d),
        [
            format!("Claim {name}"),
            "Cordon old-0".into(),
            "Evict default/web-0".into()
        ],
        "claimed on sight, then the old node is drained"
    );
    assert_eq!(
        w.batch(0).slot_nodes.get(&slot).map(String::as_str),
        Some(name)
    );
    assert_eq!(w.batch(0).new_nodes, std::slice::from_ref(&slot));

    // The gate watches the pods on the node the provider named.
    w.obs.pods.retain(|p| p.name != "web-0");
    w.land("web-1", name, "web");
    w.tick(5);
    w.step();
    assert_eq!(w.batch(0).phase, BatchPhase::Soaking);
    assert_eq!(w.status().health.as_ref().unwrap().tracked_pods, 1);
}

#[test]
fn a_slot_the_provider_gave_up_on_fails_the_batch_with_its_reason() {
    use crate::engine::observed::{SlotState, SlotView};
    let mut w = World::with_nodes(plan(), 1);
    let d = w.decide();
    w.apply(&Decision {
        actions: vec![],
        ..d
    });
    let slot = new_name(0, 0, 0);
    let why = "InsufficientInstanceCapacity: no m6i.large in eu-west-1a";
    w.reported.insert(
        slot.clone(),
        SlotView {
            node: None,
            state: SlotState::Failed(why.into()),
        },
    );
    w.tick(5);
    let d = w.step();
    assert_eq!(w.phase(), Phase::RollingBack);
    let (_, note) = event(&d, reasons::NODE_FAILED);
    assert!(note.contains(why), "{note}");
    assert_eq!(
        acts(&d),
        [format!("RemoveSlot {slot} (no node)")],
        "what the provider made for the slot is released"
    );
    w.step();
    assert_eq!(w.phase(), Phase::RolledBack);
}
