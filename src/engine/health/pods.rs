//! One pod on a new node: healthy, still starting, blipping, or unhealthy, and why.

use super::{WaitKind, add, human};
use crate::engine::observed::{PodPhase, PodView};
use crate::engine::settings::Settings;
use jiff::Timestamp;

/// What the gate makes of one pod.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Judgement {
    Healthy,
    /// Not Ready yet, or not Ready again, within its grace; `due` is when that grace ends.
    Waiting {
        kind: WaitKind,
        what: String,
        due: Timestamp,
    },
    Unhealthy {
        reason: String,
        since: Option<Timestamp>,
    },
}

/// A pod that is not Ready counts once both graces are over: `readyTimeout` after it started
/// (a new pod's start-up) and `notReadyTimeout` after its readiness last changed (a pod that was
/// Ready and lost it). A never-Ready pod's readiness last changed when it was created, so for it
/// the first grace decides; a flapping pod's last change is recent, so the second one does.
pub(super) fn judge(pod: &PodView, settings: &Settings, now: Timestamp) -> Judgement {
    let problem = pod
        .problem
        .as_deref()
        .map(|p| format!(" ({p})"))
        .unwrap_or_default();
    let started = pod.started_at.unwrap_or(now);
    if pod.phase == PodPhase::Failed {
        return Judgement::Unhealthy {
            reason: format!("failed{problem}"),
            since: pod.started_at,
        };
    }
    if pod.restarts > settings.max_restarts {
        return Judgement::Unhealthy {
            reason: format!(
                "restarted {} times since it landed (health.maxRestarts {}){problem}",
                pod.restarts, settings.max_restarts
            ),
            since: pod.started_at,
        };
    }
    if pod.ready {
        return Judgement::Healthy;
    }
    let start_due = add(started, settings.ready_timeout);
    let lost_since = pod.ready_since.unwrap_or(started);
    let lost_due = add(lost_since, settings.not_ready_timeout);
    if now >= start_due && now >= lost_due {
        let reason = if lost_due > start_due {
            format!(
                "not Ready for {} without a break, since {lost_since} (health.notReadyTimeout){problem}",
                human(settings.not_ready_timeout)
            )
        } else {
            format!(
                "not Ready {} after it started (health.readyTimeout){problem}",
                human(settings.ready_timeout)
            )
        };
        return Judgement::Unhealthy {
            reason,
            since: Some(if lost_due > start_due {
                lost_since
            } else {
                started
            }),
        };
    }
    if now < start_due {
        Judgement::Waiting {
            kind: WaitKind::Starting,
            what: format!("pod {} to become Ready", pod.key()),
            due: start_due.max(lost_due),
        }
    } else {
        Judgement::Waiting {
            kind: WaitKind::Blip,
            what: format!(
                "pod {} to be Ready again (not Ready since {lost_since}; counts at {lost_due})",
                pod.key()
            ),
            due: lost_due,
        }
    }
}
