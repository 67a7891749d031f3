//! Errors of the controller shell, with bounded categories for logs, Events and metrics.

/// Something the shell could not do. The engine never fails; only talking to the cluster does.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("provider: {0}")]
    Provision(#[from] crate::provision::ProvisionError),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("cannot serialize status: {0}")]
    Serialize(#[from] serde_json::Error),
    #[error("{what} changed while molt acted on it (conflict); retrying")]
    Conflict { what: String },
    #[error("the controller's caches are not ready: {0}")]
    NotReady(String),
}

impl Error {
    /// A short, bounded label for this error.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Provision(_) => "provision",
            Error::Finalizer(_) => "finalizer",
            Error::Serialize(_) => "serialize",
            Error::Conflict { .. } => "conflict",
            Error::NotReady(_) => "not_ready",
        }
    }
}
