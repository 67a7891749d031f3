//! Smoke tests of the local control plane: the pieces molt relies on are real.
//!
//! Each test owns a namespace and a pool of kwok nodes, and pins its pods to
//! that pool, so the tests run in parallel on one cluster. Nothing is judged
//! by elapsed time: every wait is for a condition, with a generous deadline.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use kube::api::{Api, EvictParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use molt_e2e::{
    Cluster, FAULT_ANNOTATION, FAULT_LABEL, Fault, NodePool, NodePoolSpec, TestNamespace,
    default_timeout, deployment, describe_pods, eventually, has_controller_not_ready_taint,
    is_node_ready, is_pod_ready, live_pods, node_ready_status, pod_condition,
    pod_disruption_budget, pod_node, pod_phase, pod_restarts, wait_for,
};
use serde_json::json;

async fn create_deployment(ns: &TestNamespace, name: &str, replicas: i32, pool: &NodePool) {
    let d = deployment(name, replicas, &pool.selector()).unwrap();
    ns.api::<Deployment>()
        .create(&PostParams::default(), &d)
        .await
        .unwrap();
}

/// Waits until the Deployment `app` has exactly `n` live pods, all Running and
/// Ready, and returns them.
async fn wait_ready_pods(ns: &TestNamespace, app: &str, n: usize) -> Vec<Pod> {
    let pods = ns.api::<Pod>();
    let selector = format!("app={app}");
    eventually(&format!("{n} Running, Ready pods of {app}"), || async {
        let live = live_pods(&pods, &selector).await?;
        let ok = live.len() == n
            && live
                .iter()
                .all(|p| pod_phase(p) == Some("Running") && is_pod_ready(p));
        if ok {
            Ok(Some(live))
        } else {
            Err(describe_pods(&live))
        }
    })
    .await
    .unwrap()
}

/// The single live pod of the Deployment `app`, once it satisfies `cond`.
async fn wait_single_pod(
    ns: &TestNamespace,
    app: &str,
    what: &str,
    cond: impl Fn(&Pod) -> bool,
) -> Pod {
    let pods = ns.api::<Pod>();
    let selector = format!("app={app}");
    eventually(what, || async {
        let live = live_pods(&pods, &selector).await?;
        match live.as_slice() {
            [p] if cond(p) => Ok(Some(p.clone())),
            _ => Err(describe_pods(&live)),
        }
    })
    .await
    .unwrap()
}

fn container_state(pod: &Pod) -> serde_json::Value {
    let statuses = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.clone());
    serde_json::to_value(statuses.unwrap_or_default()).unwrap()
}

#[tokio::test]
async fn the_api_server_reports_its_real_release() {
    let cluster = Cluster::connect().await.unwrap();
    let v = cluster.client().apiserver_version().await.unwrap();
    assert!(
        v.git_version.starts_with("v1.35."),
        "server version {} is not a 1.35 release",
        v.git_version
    );
    assert_eq!((v.major.as_str(), v.minor.as_str()), ("1", "35"));
}

#[tokio::test]
async fn kwok_nodes_become_ready_with_their_labels_capacity_and_lease() {
    let cluster = Cluster::connect().await.unwrap();
    let spec = NodePoolSpec::new("ready", 3)
        .label("example.com/image", "image-a")
        .capacity("8", "32Gi", "50");
    let pool = cluster.node_pool(spec).await.unwrap();

    let nodes: Api<Node> = Api::all(cluster.client());
    let listed = nodes
        .list(&ListParams::default().labels(&pool.label_selector()))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 3);
    for node in &listed.items {
        assert!(is_node_ready(node), "{} is not Ready", node.name_any());
        assert_eq!(node.labels()["example.com/image"], "image-a");
        let allocatable = node
            .status
            .as_ref()
            .and_then(|s| s.allocatable.clone())
            .unwrap();
        assert_eq!(allocatable["cpu"].0, "8");
        assert_eq!(allocatable["pods"].0, "50");
    }

    // kwok keeps each node alive through its Lease, as a kubelet does.
    let leases: Api<Lease> = Api::namespaced(cluster.client(), "kube-node-lease");
    for name in pool.nodes() {
        let lease = wait_for(&leases, name, "the node's lease to be renewed", |l| {
            l.and_then(|l| l.spec.as_ref())
                .is_some_and(|s| s.renew_time.is_some())
        })
        .await
        .unwrap();
        assert!(lease.spec.unwrap().holder_identity.is_some());
    }
    pool.delete().await.unwrap();
}

#[tokio::test]
async fn a_pdb_guards_evictions_and_evicted_pods_are_recreated_elsewhere() {
    let cluster = Cluster::connect().await.unwrap();
    let pool = cluster
        .node_pool(NodePoolSpec::new("pdb", 4))
        .await
        .unwrap();
    let ns = cluster.namespace("pdb").await.unwrap();
    let pdbs = ns.api::<PodDisruptionBudget>();
    let pods = ns.api::<Pod>();

    // Three replicas spread over the pool, guarded by a PDB that allows no
    // disruption at all (minAvailable = replicas).
    pdbs.create(
        &PostParams::default(),
        &pod_disruption_budget("web", "web", 3).unwrap(),
    )
    .await
    .unwrap();
    create_deployment(&ns, "web", 3, &pool).await;

    let running = wait_ready_pods(&ns, "web", 3).await;
    let nodes: BTreeSet<&str> = running.iter().filter_map(pod_node).collect();
    assert_eq!(
        nodes.len(),
        3,
        "pods not spread: {}",
        describe_pods(&running)
    );
    assert!(nodes.iter().all(|n| pool.nodes().iter().any(|p| p == n)));

    // The disruption controller computes the budget's status.
    let pdb = wait_for(&pdbs, "web", "PDB status for 3 healthy pods", |p| {
        p.and_then(|p| p.status.as_ref()).is_some_and(|s| {
            s.current_healthy == 3 && s.desired_healthy == 3 && s.expected_pods == 3
        })
    })
    .await
    .unwrap();
    assert_eq!(pdb.status.unwrap().disruptions_allowed, 0);

    // An eviction the budget forbids is refused with 429 and the pod stays.
    let victim = running[0].clone();
    let victim_name = victim.name_any();
    let victim_node = pod_node(&victim).unwrap().to_string();
    match pods.evict(&victim_name, &EvictParams::default()).await {
        Err(kube::Error::Api(e)) => {
            assert_eq!(e.code, 429, "unexpected refusal: {e:?}");
            assert!(
                e.message.contains("disruption budget"),
                "unexpected message: {}",
                e.message
            );
        }
        other => panic!("eviction forbidden by the PDB was not refused: {other:?}"),
    }
    let still = pods.get(&victim_name).await.unwrap();
    assert!(still.metadata.deletion_timestamp.is_none());

    // Relax the budget to minAvailable=2: the controller allows one disruption.
    pdbs.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "minAvailable": 2 } })),
    )
    .await
    .unwrap();
    let pdb = wait_for(&pdbs, "web", "PDB to allow one disruption", |p| {
        p.is_some_and(|p| {
            let generation = p.metadata.generation;
            p.status
                .as_ref()
                .is_some_and(|s| s.observed_generation == generation && s.disruptions_allowed == 1)
        })
    })
    .await
    .unwrap();
    assert_eq!(pdb.status.unwrap().desired_healthy, 2);

    // Drain-style: cordon the victim's node, then evict. The eviction is
    // accepted, the pod goes away and the ReplicaSet's replacement is placed
    // by the scheduler on another node.
    let node_api: Api<Node> = Api::all(cluster.client());
    node_api
        .patch(
            &victim_node,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "unschedulable": true } })),
        )
        .await
        .unwrap();
    pods.evict(&victim_name, &EvictParams::default())
        .await
        .unwrap();
    let uid = victim.uid().unwrap();
    tokio::time::timeout(
        default_timeout(),
        await_condition(pods.clone(), &victim_name, conditions::is_deleted(&uid)),
    )
    .await
    .expect("evicted pod was not deleted")
    .unwrap();

    let after = wait_ready_pods(&ns, "web", 3).await;
    assert!(after.iter().all(|p| p.name_any() != victim_name));
    let replacement: Vec<&Pod> = after
        .iter()
        .filter(|p| !running.iter().any(|r| r.name_any() == p.name_any()))
        .collect();
    assert_eq!(replacement.len(), 1, "{}", describe_pods(&after));
    let new_node = pod_node(replacement[0]).unwrap();
    assert_ne!(
        new_node, victim_node,
        "replacement landed on the cordoned node"
    );
    assert!(pool.nodes().iter().any(|n| n == new_node));

    ns.delete().await.unwrap();
    pool.delete().await.unwrap();
}

#[tokio::test]
async fn pods_on_a_not_ready_node_run_but_never_become_ready() {
    let cluster = Cluster::connect().await.unwrap();
    let bad = cluster
        .node_pool(NodePoolSpec::new("notready", 1).fault(Fault::PodNotReady))
        .await
        .unwrap();
    let good = cluster
        .node_pool(NodePoolSpec::new("healthy", 1))
        .await
        .unwrap();
    let ns = cluster.namespace("notready").await.unwrap();

    create_deployment(&ns, "faulty", 1, &bad).await;
    let pod = wait_single_pod(
        &ns,
        "faulty",
        "a running, unready pod on the faulty node",
        |p| pod_phase(p) == Some("Running") && pod_condition(p, "Ready") == Some("False"),
    )
    .await;
    assert_eq!(pod.annotations()[FAULT_ANNOTATION], "not-ready");
    let state = container_state(&pod);
    assert_eq!(state[0]["started"], true, "{state}");
    assert!(state[0]["state"]["running"].is_object(), "{state}");

    // A pod created afterwards on a healthy node becomes Ready, so kwok has
    // long had its chance with the faulty pod: it is still unready, and it
    // has not restarted.
    create_deployment(&ns, "control", 1, &good).await;
    wait_ready_pods(&ns, "control", 1).await;
    let pod = ns.api::<Pod>().get(&pod.name_any()).await.unwrap();
    assert_eq!(pod_condition(&pod, "Ready"), Some("False"));
    assert_eq!(pod_restarts(&pod), 0);
    let deployments = ns.api::<Deployment>();
    let d = deployments.get("faulty").await.unwrap();
    assert_eq!(d.status.and_then(|s| s.ready_replicas).unwrap_or(0), 0);

    // The fault follows the node label: once it is removed the pod recovers.
    let nodes: Api<Node> = Api::all(cluster.client());
    nodes
        .patch(
            &bad.nodes()[0],
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "labels": { FAULT_LABEL: null } } })),
        )
        .await
        .unwrap();
    wait_ready_pods(&ns, "faulty", 1).await;

    ns.delete().await.unwrap();
    bad.delete().await.unwrap();
    good.delete().await.unwrap();
}

#[tokio::test]
async fn pods_on_a_crashloop_node_restart_over_and_over() {
    let cluster = Cluster::connect().await.unwrap();
    let bad = cluster
        .node_pool(NodePoolSpec::new("crashloop", 1).fault(Fault::CrashLoop))
        .await
        .unwrap();
    let ns = cluster.namespace("crashloop").await.unwrap();
    create_deployment(&ns, "crashy", 1, &bad).await;

    // Follow the pod: its restartCount only grows, it is never Ready, and it
    // reaches three restarts.
    let seen = RefCell::new(Vec::<i32>::new());
    let ever_ready = Cell::new(false);
    let pods = ns.api::<Pod>();
    let pod = eventually("restartCount to reach 3", || async {
        let live = live_pods(&pods, "app=crashy").await?;
        let [p] = live.as_slice() else {
            return Err(describe_pods(&live));
        };
        ever_ready.set(ever_ready.get() || is_pod_ready(p));
        let restarts = pod_restarts(p);
        let mut seen = seen.borrow_mut();
        if seen.last() != Some(&restarts) {
            seen.push(restarts);
        }
        if restarts >= 3 {
            Ok(Some(p.clone()))
        } else {
            Err(describe_pods(&live))
        }
    })
    .await
    .unwrap();
    let (seen, ever_ready) = (seen.into_inner(), ever_ready.get());

    assert!(!ever_ready, "a crash-looping pod was Ready");
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "restartCount went down: {seen:?}"
    );
    assert_eq!(pod.annotations()[FAULT_ANNOTATION], "crashloop");
    assert_eq!(pod_condition(&pod, "Ready"), Some("False"));
    let state = container_state(&pod);
    assert_eq!(
        state[0]["state"]["waiting"]["reason"], "CrashLoopBackOff",
        "{state}"
    );
    assert_eq!(
        state[0]["lastState"]["terminated"]["exitCode"], 1,
        "{state}"
    );

    ns.delete().await.unwrap();
    bad.delete().await.unwrap();
}

#[tokio::test]
async fn a_node_not_ready_node_never_becomes_ready() {
    let cluster = Cluster::connect().await.unwrap();
    // node_pool returns once kwok has reported the node NotReady.
    let bad = cluster
        .node_pool(NodePoolSpec::new("nodenotready", 1).fault(Fault::NodeNotReady))
        .await
        .unwrap();
    let bad_node = bad.nodes()[0].clone();
    let nodes: Api<Node> = Api::all(cluster.client());
    let node = nodes.get(&bad_node).await.unwrap();
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .cloned()
        .unwrap();
    assert_eq!(ready.status, "False");
    assert_eq!(ready.reason.as_deref(), Some("KubeletNotReady"));

    // The control plane agrees: the node lifecycle controller has tainted it
    // (node_pool waited for that), and the scheduler will not place a pod there.
    assert!(has_controller_not_ready_taint(&node));
    let ns = cluster.namespace("nodenotready").await.unwrap();
    create_deployment(&ns, "stranded", 1, &bad).await;
    let pod = wait_single_pod(&ns, "stranded", "the pod to be unschedulable", |p| {
        p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| {
                c.iter().any(|c| {
                    c.type_ == "PodScheduled"
                        && c.status == "False"
                        && c.reason.as_deref() == Some("Unschedulable")
                })
            })
    })
    .await;
    assert_eq!(pod_node(&pod), None);

    // A node created after it becomes Ready, so kwok has processed the faulty
    // node long since: it is still not Ready.
    let good = cluster
        .node_pool(NodePoolSpec::new("afternnr", 1))
        .await
        .unwrap();
    let node = nodes.get(&bad_node).await.unwrap();
    assert_eq!(node_ready_status(&node), Some("False"));
    assert_eq!(
        node.labels()[FAULT_LABEL],
        Fault::NodeNotReady.label_value()
    );

    ns.delete().await.unwrap();
    good.delete().await.unwrap();
    bad.delete().await.unwrap();
}
