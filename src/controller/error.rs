//! Errors of the controller shell, with bounded categories for logs, Events and metrics.

use std::time::Duration;

/// Something the shell could not do. The engine never fails; only talking to the cluster does.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("provider: {0}")]
    Provision(#[from] crate::provision::ProvisionError),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("{what} changed while molt acted on it (conflict); retrying")]
    Conflict { what: String },
    #[error("the controller's caches are not ready: {0}")]
    NotReady(String),
    /// A call that hung: the API server or the provider is slow, not a cache still loading.
    #[error("{action} took longer than {after:?}; the next reconcile repeats it")]
    ActionTimeout { action: String, after: Duration },
}

impl Error {
    /// A short, bounded label for this error.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Provision(_) => "provision",
            Error::Finalizer(_) => "finalizer",
            Error::Conflict { .. } => "conflict",
            Error::NotReady(_) => "not_ready",
            Error::ActionTimeout { .. } => "action_timeout",
        }
    }

    /// How long to wait before reconciling again. A conflict is someone else's write a moment
    /// ago: retry at once. A cache fills within a second. A hung call needs the slow side to
    /// recover, so hammering it every second would only add to its load.
    pub fn retry_after(&self) -> Duration {
        match self {
            Error::Conflict { .. } => Duration::from_millis(200),
            Error::NotReady(_) => Duration::from_secs(1),
            Error::ActionTimeout { .. } => Duration::from_secs(5),
            Error::Kube(_) | Error::Provision(_) | Error::Finalizer(_) => Duration::from_secs(5),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hung_action_is_its_own_category_and_is_not_retried_like_a_loading_cache() {
        let hung = Error::ActionTimeout {
            action: "Cordon { node: \"old-0\" }".into(),
            after: Duration::from_secs(15),
        };
        let loading = Error::NotReady("the node cache is still loading".into());
        assert_eq!(hung.category(), "action_timeout");
        assert_ne!(hung.category(), loading.category());
        assert!(hung.retry_after() > loading.retry_after());
        assert_eq!(hung.retry_after(), Duration::from_secs(5));
        assert!(hung.to_string().contains("Cordon"), "{hung}");
    }

    #[test]
    fn a_conflict_is_retried_sooner_than_anything_else() {
        let conflict = Error::Conflict {
            what: "node old-0".into(),
        };
        for other in [
            Error::NotReady(String::new()),
            Error::ActionTimeout {
                action: String::new(),
                after: Duration::ZERO,
            },
            Error::Kube(kube::Error::LinesCodecMaxLineLengthExceeded),
        ] {
            assert!(conflict.retry_after() < other.retry_after(), "{other:?}");
        }
    }
}
