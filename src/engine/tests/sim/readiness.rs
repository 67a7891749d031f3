//! What the model kubelet reports of a running pod's readiness: Ready or not, and the last
//! transition of its `Ready` condition. Both follow from the pod's story (when it started, the
//! image's fault, its workload's outage), not from the model's time steps, so a step that jumps
//! past a change still reports the moment it happened, as a real kubelet would have. The story
//! also says when the next change comes, which is when a watching controller would wake up.

use super::{FLAP_EPOCH, Fault, Flap, Outage, Sim};
use crate::engine::observed::{NodeView, PodPhase, PodView};
use crate::engine::tests::{at, image, t0};
use jiff::Timestamp;

/// A healthy pod is Ready this many seconds after it started.
pub(super) const READY_AFTER: i64 = 10;

/// The kubelet's report on one running pod.
pub(super) struct Report {
    pub ready: bool,
    /// The `Ready` condition's last transition.
    pub since: Timestamp,
    pub restarts: i32,
    pub problem: Option<String>,
}

/// How a running pod's readiness goes.
enum Story {
    /// Never Ready, for this reason.
    Never(&'static str),
    /// Never Ready, restarting every 15 seconds.
    CrashLoop,
    /// Ready after start-up, with losses of readiness as the flap says.
    Flaps(Flap),
}

/// A pod that never flaps: Ready [`READY_AFTER`] seconds after it started, for good.
const STEADY: Flap = Flap {
    times: 0,
    up: 0,
    down: 0,
    everywhere: false,
};

impl Flap {
    /// The moments a pod that started at `started` becomes Ready (even) and loses readiness
    /// (odd), in order. A shared flap's windows are cut into the pod's own Ready time.
    fn changes(&self, started: Timestamp) -> Vec<Timestamp> {
        let first = at(started, READY_AFTER);
        let times = i64::from(self.times);
        let cycle = self.up + self.down;
        if !self.everywhere {
            let mut v = vec![first];
            for k in 0..times {
                v.push(at(first, k * cycle + self.up));
                v.push(at(first, (k + 1) * cycle));
            }
            return v;
        }
        let epoch = at(t0(), FLAP_EPOCH);
        let mut v: Vec<Timestamp> = vec![];
        let mut ready_from = first;
        for k in 0..times {
            let from = at(epoch, k * cycle + self.up);
            let to = at(from, self.down);
            if to <= ready_from {
                continue;
            }
            if from > ready_from {
                v.extend([ready_from, from]);
            }
            ready_from = to;
        }
        v.push(ready_from);
        v
    }

    /// Ready or not at `now`, for a pod that started at `started`, and since when.
    fn at(&self, started: Timestamp, now: Timestamp) -> (bool, Timestamp) {
        let changes = self.changes(started);
        match changes.iter().rposition(|c| *c <= now) {
            None => (false, started),
            Some(i) => (i % 2 == 0, changes[i]),
        }
    }
}

impl Sim {
    fn story(&self, p: &PodView, node: &NodeView) -> Story {
        let on_new = image(node) == Some(self.target().as_str());
        let app = p.labels.get("app");
        let hit = self.fault_only.is_none() || self.fault_only.as_ref() == app;
        let in_outage = self.outage_pods.contains(&p.uid)
            || self
                .workloads
                .iter()
                .any(|w| w.outage == Outage::All && Some(&w.name) == app);
        match self.fault {
            _ if in_outage => Story::Never("ReadinessProbeFailed"),
            Fault::PodsNeverReady if on_new && hit => Story::Never("ReadinessProbeFailed"),
            Fault::CrashLoop if on_new && hit => Story::CrashLoop,
            Fault::Flaps(f) if (on_new || f.everywhere) && hit => Story::Flaps(f),
            _ => Story::Flaps(STEADY),
        }
    }

    /// What the kubelet reports now of running pod `p` on `node`.
    pub(super) fn report(&self, p: &PodView, node: &NodeView) -> Report {
        let now = self.now;
        let started = p.started_at.unwrap_or(now);
        // Never Ready: since it started, or since now if it was Ready until now (an outage that
        // began during the plan).
        let never = |problem: &str| Report {
            ready: false,
            since: if p.ready {
                now
            } else {
                p.ready_since.unwrap_or(started)
            },
            restarts: p.restarts,
            problem: Some(problem.into()),
        };
        match self.story(p, node) {
            Story::Never(problem) => never(problem),
            Story::CrashLoop => Report {
                restarts: (now.duration_since(started).as_secs() / 15) as i32,
                ..never("CrashLoopBackOff")
            },
            Story::Flaps(f) => {
                let (ready, since) = f.at(started, now);
                // Not Ready after it was: its readiness probe fails.
                let lost = !ready && since != started;
                Report {
                    ready,
                    since,
                    restarts: p.restarts,
                    problem: lost.then(|| "ReadinessProbeFailed".into()),
                }
            }
        }
    }

    /// The next moment a running pod's readiness changes, if any will: the controller's watches
    /// (on pods, and on the workloads whose ready counts follow) would wake it then.
    pub fn next_change(&self) -> Option<Timestamp> {
        self.pods
            .iter()
            .filter(|p| p.phase == PodPhase::Running && p.deleting_since.is_none())
            .filter_map(|p| {
                let node = self.node(&p.node)?;
                let Story::Flaps(f) = self.story(p, node) else {
                    return None;
                };
                let started = p.started_at?;
                f.changes(started).into_iter().find(|c| *c > self.now)
            })
            .min()
    }
}
