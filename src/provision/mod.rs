//! The provider port: how molt creates and removes nodes.
//!
//! The engine decides *which* node (name, labels, taints, capacity, image); a provider only makes
//! it exist or go away. Both calls must be idempotent: creating a node that exists, or removing one
//! that is gone, succeeds. Cluster API, external hooks and in-place updates implement the same port.

pub mod kwok;

use crate::engine::NewNode;
use futures::future::BoxFuture;

/// A provider could not create or remove a node.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("the API server refused: {0}")]
    Api(#[from] kube::Error),
    #[error("cannot build the node object: {0}")]
    Build(#[from] serde_json::Error),
}

/// Creates and removes nodes.
pub trait NodeProvisioner: Send + Sync {
    /// Make `node` exist (no-op if a node of that name exists).
    fn create<'a>(&'a self, node: &'a NewNode) -> BoxFuture<'a, Result<(), ProvisionError>>;
    /// Make the node called `name` go away (no-op if it is gone).
    fn remove<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), ProvisionError>>;
}
