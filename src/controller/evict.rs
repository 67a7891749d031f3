//! One eviction through the Eviction API, and what its answer means for the drain.
//!
//! The API server answers a refused eviction with a status code, and the drain needs that answer,
//! not a retry: the client is built with `default_retry = false` (`main.rs`) so a 429 reaches
//! [`classify`] instead of being retried for minutes. The classes follow Cluster API's drain
//! (`core/reconcilers/machine/drain/drain.go`).

use crate::engine::observed::EvictionOutcome;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, EvictParams, Preconditions};
use kube::core::Status;

/// The cause the API server gives when a namespace being deleted takes no new objects (an
/// Eviction is one). `k8s.io/api/core/v1.NamespaceTerminatingCause`.
const NAMESPACE_TERMINATING: &str = "NamespaceTerminating";

/// The API server's answer to one eviction, as the drain reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EvictAnswer {
    /// Accepted: the pod is terminating.
    Evicted,
    /// The pod is gone, or its name now belongs to another pod (404; 409 on the UID precondition).
    Gone,
    /// A PodDisruptionBudget does not allow it now (429); the server's words, with its causes.
    Blocked(String),
    /// The pod's namespace is being deleted (403 with cause `NamespaceTerminating`): the namespace
    /// controller deletes the pod itself, so the drain waits for it rather than reporting a refusal.
    NamespaceTerminating,
    /// Refused for a reason retrying may not fix (500: several PDBs; any other 403); the server's words.
    Refused(String),
}

impl EvictAnswer {
    /// What the engine is told about this pod on its next look.
    ///
    /// Only refusals are remembered. Every other answer clears what was remembered for the pod:
    /// the latest answer is the one that counts. `NamespaceTerminating` is deliberately not a new
    /// kind of feedback: the engine keeps the pod among those still to leave and asks again on its
    /// next pass; by then the namespace controller has usually marked the pod deleted, and the
    /// drain waits for a terminating pod as it always does. No blocker is shown, because nobody
    /// has to act.
    pub fn feedback(&self) -> Option<EvictionOutcome> {
        match self {
            EvictAnswer::Blocked(m) => Some(EvictionOutcome::Blocked(m.clone())),
            EvictAnswer::Refused(m) => Some(EvictionOutcome::Refused(m.clone())),
            EvictAnswer::Evicted | EvictAnswer::Gone | EvictAnswer::NamespaceTerminating => None,
        }
    }

    /// A short, bounded label for metrics.
    pub fn metric(&self) -> &'static str {
        match self {
            EvictAnswer::Evicted => "accepted",
            EvictAnswer::Gone => "gone",
            EvictAnswer::Blocked(_) => "blocked",
            EvictAnswer::NamespaceTerminating => "namespace_terminating",
            EvictAnswer::Refused(_) => "refused",
        }
    }
}

/// What a failed eviction call means, or `None` if it is no answer about the pod at all (the
/// call itself failed: a timeout, a 401, a 5xx other than 500) and the reconcile must retry.
pub fn classify(error: &kube::Error) -> Option<EvictAnswer> {
    let kube::Error::Api(status) = error else {
        return None;
    };
    match status.code {
        404 | 409 => Some(EvictAnswer::Gone),
        429 => Some(EvictAnswer::Blocked(words(status))),
        403 if has_cause(status, NAMESPACE_TERMINATING) => Some(EvictAnswer::NamespaceTerminating),
        403 | 500 => Some(EvictAnswer::Refused(words(status))),
        _ => None,
    }
}

fn has_cause(status: &Status, reason: &str) -> bool {
    status
        .details
        .iter()
        .flat_map(|d| &d.causes)
        .any(|c| c.reason == reason)
}

/// The server's message followed by its causes: for a 429 the message alone says only that "the
/// pod's disruption budget" refuses, the cause names the budget and its counts.
fn words(status: &Status) -> String {
    let mut words = status.message.clone();
    for cause in status.details.iter().flat_map(|d| &d.causes) {
        if cause.message.is_empty() || words.contains(&cause.message) {
            continue;
        }
        if !words.is_empty() {
            words.push(' ');
        }
        words.push_str(&cause.message);
    }
    words
}

/// The eviction of `pod` (`uid`): the precondition makes a pod recreated under the same name
/// answer 409 instead of being evicted in its place. Never a delete.
pub fn params(uid: &str, grace_period_seconds: Option<i64>) -> EvictParams {
    EvictParams {
        delete_options: Some(DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(uid.to_string()),
                resource_version: None,
            }),
            grace_period_seconds: grace_period_seconds.and_then(|g| u32::try_from(g).ok()),
            ..DeleteParams::default()
        }),
        ..EvictParams::default()
    }
}

/// Ask the API server to evict `pod`; a refusal is an answer, other failures are errors.
pub async fn evict(
    pods: &Api<Pod>,
    pod: &str,
    uid: &str,
    grace_period_seconds: Option<i64>,
) -> Result<EvictAnswer, kube::Error> {
    match pods.evict(pod, &params(uid, grace_period_seconds)).await {
        Ok(_) => Ok(EvictAnswer::Evicted),
        Err(e) => classify(&e).ok_or(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::response::{StatusCause, StatusDetails};

    fn api(code: u16, message: &str, causes: &[(&str, &str)]) -> kube::Error {
        let details = (!causes.is_empty()).then(|| StatusDetails {
            name: "web-0".into(),
            group: String::new(),
            kind: "pods".into(),
            uid: String::new(),
            causes: causes
                .iter()
                .map(|(reason, message)| StatusCause {
                    reason: reason.to_string(),
                    message: message.to_string(),
                    field: String::new(),
                })
                .collect(),
            retry_after_seconds: 0,
        });
        kube::Error::Api(Box::new(Status {
            code,
            message: message.into(),
            details,
            ..Status::failure(message, "")
        }))
    }

    const PDB: &str = "Cannot evict pod as it would violate the pod's disruption budget.";
    const TERMINATING: &str = "pods \"web-0\" is forbidden: unable to create new content in namespace shop because it is being terminated";

    #[test]
    fn answers_by_code_and_cause() {
        let table: Vec<(&str, kube::Error, Option<EvictAnswer>)> = vec![
            (
                "429 with the budget's cause",
                api(
                    429,
                    PDB,
                    &[(
                        "DisruptionBudget",
                        "The disruption budget web needs 2 healthy pods and has 2 currently",
                    )],
                ),
                Some(EvictAnswer::Blocked(format!(
                    "{PDB} The disruption budget web needs 2 healthy pods and has 2 currently"
                ))),
            ),
            (
                "429 without details",
                api(429, PDB, &[]),
                Some(EvictAnswer::Blocked(PDB.into())),
            ),
            (
                "500: several budgets",
                api(
                    500,
                    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                    &[],
                ),
                Some(EvictAnswer::Refused(
                    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.".into(),
                )),
            ),
            (
                "403 in a namespace being deleted",
                api(
                    403,
                    TERMINATING,
                    &[(NAMESPACE_TERMINATING, "namespace shop is being terminated")],
                ),
                Some(EvictAnswer::NamespaceTerminating),
            ),
            (
                "403 for another cause",
                api(
                    403,
                    "pods \"web-0\" is forbidden: User \"molt\" cannot create resource \"pods/eviction\"",
                    &[("FieldValueForbidden", "")],
                ),
                Some(EvictAnswer::Refused(
                    "pods \"web-0\" is forbidden: User \"molt\" cannot create resource \"pods/eviction\"".into(),
                )),
            ),
            (
                "403 without details",
                api(403, TERMINATING, &[]),
                Some(EvictAnswer::Refused(TERMINATING.into())),
            ),
            (
                "404",
                api(404, "pods \"web-0\" not found", &[]),
                Some(EvictAnswer::Gone),
            ),
            (
                "409 on the UID precondition",
                api(409, "Precondition failed: UID in precondition: a, UID in object meta: b", &[]),
                Some(EvictAnswer::Gone),
            ),
            ("503", api(503, "the server is unavailable", &[]), None),
            ("401", api(401, "Unauthorized", &[]), None),
            ("422", api(422, "invalid", &[]), None),
            (
                "no answer from the server",
                kube::Error::Service("request timed out".into()),
                None,
            ),
        ];
        for (case, error, want) in table {
            assert_eq!(classify(&error), want, "{case}");
        }
    }

    #[test]
    fn only_refusals_reach_the_engine() {
        let table = [
            (EvictAnswer::Evicted, None),
            (EvictAnswer::Gone, None),
            (EvictAnswer::NamespaceTerminating, None),
            (
                EvictAnswer::Blocked("budget".into()),
                Some(EvictionOutcome::Blocked("budget".into())),
            ),
            (
                EvictAnswer::Refused("several".into()),
                Some(EvictionOutcome::Refused("several".into())),
            ),
        ];
        for (answer, want) in table {
            assert_eq!(answer.feedback(), want, "{answer:?}");
        }
    }

    #[test]
    fn causes_already_in_the_message_are_not_repeated() {
        let e = api(
            429,
            "PDB web: needs 2 healthy pods",
            &[("DisruptionBudget", "needs 2 healthy pods"), ("x", "")],
        );
        assert_eq!(
            classify(&e),
            Some(EvictAnswer::Blocked("PDB web: needs 2 healthy pods".into()))
        );
    }

    #[test]
    fn params_carry_the_uid_and_a_valid_grace_period() {
        let p = params("uid-1", Some(30));
        let d = p.delete_options.as_ref();
        assert_eq!(
            d.and_then(|d| d.preconditions.as_ref())
                .and_then(|p| p.uid.as_deref()),
            Some("uid-1")
        );
        assert_eq!(d.and_then(|d| d.grace_period_seconds), Some(30));
        // A negative grace period is not sent at all (the pod's own applies).
        let p = params("uid-1", Some(-1));
        assert_eq!(p.delete_options.and_then(|d| d.grace_period_seconds), None);
    }
}
