//! molt rolls node OS-image updates through a Kubernetes cluster with health gating.
//!
//! - [`api`]: the `NodeUpdatePlan` resource, condition reasons and node keys (public contract).
//! - [`engine`]: the pure decision core — `decide(plan, observed, now)`; no client, no clock, no I/O.
//! - [`crd`]: the CustomResourceDefinition as YAML, as checked in under `crds/`.
//! - [`cli`]: the `molt` command line.

pub mod api;
pub mod cli;
pub mod crd;
pub mod engine;
