//! The public API: the NodeUpdatePlan resource, its condition vocabulary and the keys molt writes
//! on nodes. Everything here is a user-visible contract.

pub mod analysis;
pub mod condition;
pub mod health;
pub mod keys;
pub mod plan;
pub mod status;
pub mod window;

pub use health::*;
pub use plan::*;
pub use status::*;
pub use window::*;
