//! Every size bound of the engine in one place: what status lists keep and how much one decision
//! does. Status is one etcd object (at most 1.5 MiB), so every list in it is bounded here.

/// Entries kept in the status lists people read (unhealthy, waiting for, blockers).
pub const MAX_LISTED: usize = 20;

/// Displaced workloads recorded for the batch in flight (about 100 bytes each); beyond it a
/// Warning says how many the gate could not check.
pub const MAX_DISPLACED: usize = 2_000;

/// Workloads whose outage before the plan is recorded; one beyond is not excused (the safe side).
pub const MAX_PREEXISTING: usize = 1_000;

/// Evictions issued per look at the cluster: the drain advances in bounded slices.
pub const EVICTIONS_PER_PASS: usize = 16;

/// Items quoted in one message or condition (blockers, unhealthy pods, outages): a message stays a
/// sentence; the lists in status have the rest.
pub const MAX_QUOTED: usize = 3;
