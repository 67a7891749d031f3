//! The judgements made when a checker finishes: invariant 4 after a stop decision, the end
//! state, and the audit log's record of molt's pod deletions and evictions.

use super::*;

impl Checker {
    /// Invariant 4: the window after the first halt/rollback revision.
    pub(super) fn judge_after_stop(&self) -> Vec<String> {
        let st = self.lock();
        let mut plan = st.plan.clone();
        plan.sort_by_key(|p| p.revision);
        let stopped = ["Halted", "RollingBack", "RolledBack"];
        let Some(stop) = plan
            .iter()
            .find(|p| p.phase.as_deref().is_some_and(|ph| stopped.contains(&ph)))
        else {
            return Vec::new();
        };
        let end = plan
            .iter()
            .find(|p| p.revision > stop.revision && p.generation != stop.generation)
            .map(|p| p.revision)
            .unwrap_or(u64::MAX);
        let in_window = |rv: u64| rv > stop.revision && rv < end;
        let phase = stop.phase.clone().unwrap_or_default();
        let mut out = Vec::new();
        for o in &st.timeline {
            if !in_window(o.revision) {
                continue;
            }
            let old = st
                .nodes
                .get(&o.node)
                .or_else(|| st.gone.get(&o.node))
                .is_some_and(|n| n.image.as_deref() != Some(self.cfg.target_image.as_str()));
            match &o.kind {
                ObservationKind::Cordoned { by_molt: true } if old => out.push(format!(
                    "invariant 4: old node {} cordoned by molt at revision {} after the plan turned {phase} at revision {}",
                    o.node, o.revision, stop.revision
                )),
                ObservationKind::PodLeft {
                    pod,
                    daemonset: false,
                } if old => out.push(format!(
                    "invariant 4: pod {pod} left old node {} at revision {} after the plan turned {phase} at revision {}",
                    o.node, o.revision, stop.revision
                )),
                _ => {}
            }
        }
        for (name, rv) in &st.provisioned {
            if in_window(*rv) {
                out.push(format!(
                    "invariant 4: node {name} provisioned for the target at revision {rv} after the plan turned {phase} at revision {}",
                    stop.revision
                ));
            }
        }
        out
    }

    /// Invariant 3's end state: nothing left cordoned after rollback or deletion.
    pub(super) async fn judge_end_state(&self) -> Result<Vec<String>> {
        let plan = plans(self.client.clone()).get_opt(&self.cfg.plan).await?;
        let phase = plan
            .as_ref()
            .and_then(|p| p.data.pointer("/status/phase"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let deleting = plan
            .as_ref()
            .is_some_and(|p| p.metadata.deletion_timestamp.is_some());
        if plan.is_some() && phase.as_deref() != Some("RolledBack") || deleting {
            return Ok(Vec::new());
        }
        let nodes: Api<Node> = Api::all(self.client.clone());
        let mut out = Vec::new();
        for n in nodes.list(&Default::default()).await?.items {
            if n.annotations().get(marks::CORDONED_BY) == Some(&self.cfg.plan) {
                out.push(format!(
                    "invariant 3: node {} still carries {}={} after the plan {}",
                    n.name_any(),
                    marks::CORDONED_BY,
                    self.cfg.plan,
                    if plan.is_none() {
                        "was deleted"
                    } else {
                        "rolled back"
                    }
                ));
            }
        }
        Ok(out)
    }

    /// Invariant 1 from the audit log.
    pub(super) async fn judge_audit(&self) -> Result<Vec<String>> {
        let departures: Vec<(String, String, String, u64)> = {
            let st = self.lock();
            st.departures
                .iter()
                .filter(|(_, _, _, _, ds)| !ds)
                .map(|(ns, pod, node, rv, _)| (ns.clone(), pod.clone(), node.clone(), *rv))
                .collect()
        };
        let path = audit_log_path();
        let molt = self.cfg.molt_user.clone();
        let mut out;
        let mut attempts = 0;
        loop {
            attempts += 1;
            out = Vec::new();
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) => {
                    return Ok(vec![format!(
                        "invariant 1 cannot be checked: the audit log {} is unreadable: {e}",
                        path.display()
                    )]);
                }
            };
            let mut evicted: BTreeSet<(String, String)> = BTreeSet::new();
            for line in text.lines() {
                let Ok(ev) = serde_json::from_str::<Value>(line) else {
                    continue;
                };
                let s = |p: &str| ev.pointer(p).and_then(Value::as_str).unwrap_or_default();
                let ns = s("/objectRef/namespace").to_string();
                if !self.cfg.namespaces.contains(&ns) || s("/user/username") != molt {
                    continue;
                }
                let name = s("/objectRef/name").to_string();
                let code = ev
                    .pointer("/responseStatus/code")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                match (s("/verb"), s("/objectRef/subresource")) {
                    ("delete" | "deletecollection", "") => out.push(format!(
                        "invariant 1: molt deleted pod {ns}/{name} directly (answer {code})"
                    )),
                    // 504: molt went away (killed) while the API server handled the eviction;
                    // the handler goes on after the timeout filter answers, so the pod may be
                    // gone all the same, through the eviction path and its PDB check.
                    ("create", "eviction") if (200..300).contains(&code) || code == 504 => {
                        evicted.insert((ns, name));
                    }
                    _ => {}
                }
            }
            for (ns, pod, node, rv) in &departures {
                if !evicted.contains(&(ns.clone(), pod.clone())) {
                    out.push(format!(
                        "invariant 1: pod {ns}/{pod} left node {node} (revision {rv}) without an eviction by molt that the API server accepted"
                    ));
                }
            }
            // The audit entry of a request is written as its response
            // completes; read again briefly before judging a departure.
            if out.is_empty() || attempts >= 20 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Ok(out)
    }
}
