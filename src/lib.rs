//! molt rolls node OS-image updates through a Kubernetes cluster with health gating.
//!
//! - [`api`]: the `NodeUpdatePlan` resource, condition reasons and node keys (public contract).
//! - [`engine`]: the pure decision core — `decide(plan, observed, now)`; no client, no clock, no I/O.
//! - [`controller`]: the shell — watches, reconcile, status, Events, finalizer, action execution.
//! - [`provision`]: the provider port (create/remove nodes) and its kwok implementation.
//! - [`crd`]: the CustomResourceDefinition as YAML, as checked in under `crds/`.
//! - [`metrics`], [`http`]: Prometheus metrics, `/healthz` and `/readyz`.
//! - [`leader`]: leader election on a Lease and the fence that stops a non-leader's writes.
//! - [`operator`]: `molt run` — endpoints, election, and the controller while leading.
//! - [`cli`], [`telemetry`]: the command line and logs.

pub mod api;
pub mod cli;
pub mod controller;
pub mod crd;
pub mod engine;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod operator;
pub mod provision;
pub mod telemetry;
