//! The spec resolved into the numbers the engine works with.
//!
//! Admission already rejects bad specs; this re-checks them, because what slips through (an old
//! CRD, a disabled validation) must become a `Failed` plan with a reason, never a panic or a stall.

use crate::api::{NodeUpdatePlanSpec, StopPolicy, UnmanagedPodPolicy};
use crate::engine::selector;
use crate::engine::window::Windows;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::time::Duration;

/// A spec the engine cannot carry out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("spec.nodeSelector is empty; it would select every node")]
    EmptySelector,
    #[error("spec.provider must set exactly one provider")]
    NoProvider,
    #[error("spec.target.image is empty")]
    EmptyImage,
    #[error("spec.{field} is {value:?}; expected {expected}")]
    Invalid {
        field: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("spec.maintenanceWindows[{index}].{field} is {value:?}; expected {expected}")]
    Window {
        index: usize,
        field: &'static str,
        value: String,
        expected: &'static str,
    },
}

/// A count or a percentage, as written in the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Amount {
    Count(u32),
    Percent(u32),
}

impl Amount {
    fn parse(
        field: &'static str,
        v: &IntOrString,
        min: u32,
        expected: &'static str,
    ) -> Result<Amount, SpecError> {
        let invalid = || SpecError::Invalid {
            field,
            value: display(v),
            expected,
        };
        match v {
            IntOrString::Int(i) => u32::try_from(*i)
                .ok()
                .filter(|n| *n >= min)
                .map(Amount::Count)
                .ok_or_else(invalid),
            IntOrString::String(s) => match s.strip_suffix('%') {
                Some(pct) => pct
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n >= min && *n <= 100)
                    .map(Amount::Percent),
                // A number written as a string is a count, as admission allows.
                None => s
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n >= min)
                    .map(Amount::Count),
            }
            .ok_or_else(invalid),
        }
    }
}

fn display(v: &IntOrString) -> String {
    match v {
        IntOrString::Int(i) => i.to_string(),
        IntOrString::String(s) => s.clone(),
    }
}

/// The spec, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub batch_size: Amount,
    pub canary: Option<u32>,
    pub blue_green: bool,
    pub drain_timeout: Duration,
    pub grace_period_seconds: Option<i64>,
    pub delete_empty_dir_data: bool,
    pub unmanaged_pods: UnmanagedPodPolicy,
    pub on_timeout: StopPolicy,
    pub ready_timeout: Duration,
    pub not_ready_timeout: Duration,
    pub max_restarts: i32,
    pub max_unhealthy: Amount,
    pub node_ready_timeout: Duration,
    pub soak: Duration,
    pub on_failure: StopPolicy,
    pub paused: bool,
    /// When batches may start.
    pub windows: Windows,
}

fn duration(
    field: &'static str,
    d: &kube::core::Duration,
    allow_zero: bool,
) -> Result<Duration, SpecError> {
    let std: Duration = (*d).into();
    if d.is_negative() || (!allow_zero && std.is_zero()) {
        return Err(SpecError::Invalid {
            field,
            value: format!("{d:?}"),
            expected: if allow_zero {
                "a duration of 0s or more"
            } else {
                "a positive duration"
            },
        });
    }
    Ok(std)
}

impl Settings {
    /// Resolve and check a spec.
    pub fn from_spec(spec: &NodeUpdatePlanSpec) -> Result<Settings, SpecError> {
        if selector::is_empty(&spec.node_selector) {
            return Err(SpecError::EmptySelector);
        }
        if spec.provider.kwok.is_none() {
            return Err(SpecError::NoProvider);
        }
        if spec.target.image.is_empty() {
            return Err(SpecError::EmptyImage);
        }
        let canary = match &spec.strategy.canary {
            None => None,
            Some(c) => Some(u32::try_from(c.nodes).ok().filter(|n| *n >= 1).ok_or(
                SpecError::Invalid {
                    field: "strategy.canary.nodes",
                    value: c.nodes.to_string(),
                    expected: "a whole number >= 1",
                },
            )?),
        };
        if spec.drain.grace_period_seconds.is_some_and(|g| g < 0) {
            return Err(SpecError::Invalid {
                field: "drain.gracePeriodSeconds",
                value: format!("{:?}", spec.drain.grace_period_seconds),
                expected: "0 or more",
            });
        }
        if spec.health.max_restarts < 0 {
            return Err(SpecError::Invalid {
                field: "health.maxRestarts",
                value: spec.health.max_restarts.to_string(),
                expected: "0 or more",
            });
        }
        Ok(Settings {
            batch_size: Amount::parse(
                "strategy.batchSize",
                &spec.strategy.batch_size,
                1,
                "a whole number >= 1 or a percentage from 1% to 100%",
            )?,
            canary,
            blue_green: spec.strategy.blue_green,
            drain_timeout: duration("drain.timeout", &spec.drain.timeout, false)?,
            grace_period_seconds: spec.drain.grace_period_seconds,
            delete_empty_dir_data: spec.drain.delete_empty_dir_data,
            unmanaged_pods: spec.drain.unmanaged_pods,
            on_timeout: spec.drain.on_timeout,
            ready_timeout: duration("health.readyTimeout", &spec.health.ready_timeout, false)?,
            not_ready_timeout: duration(
                "health.notReadyTimeout",
                &spec.health.not_ready_timeout,
                false,
            )?,
            max_restarts: spec.health.max_restarts,
            max_unhealthy: Amount::parse(
                "health.maxUnhealthyPods",
                &spec.health.max_unhealthy_pods,
                0,
                "a whole number >= 0 or a percentage from 0% to 100%",
            )?,
            node_ready_timeout: duration(
                "health.nodeReadyTimeout",
                &spec.health.node_ready_timeout,
                false,
            )?,
            soak: duration("health.soak", &spec.health.soak, true)?,
            on_failure: spec.on_failure,
            paused: spec.paused,
            windows: Windows::parse(&spec.maintenance_windows)?,
        })
    }

    /// Old nodes per regular batch for a pool of `total` nodes in scope: percentages round up,
    /// and a batch has at least one node.
    pub fn batch_size_for(&self, total: u32) -> u32 {
        match self.batch_size {
            Amount::Count(n) => n.max(1),
            Amount::Percent(p) => (total * p).div_ceil(100).max(1),
        }
    }

    /// Size of batch `index` (the first may be the canary).
    pub fn size_of_batch(&self, index: u32, total: u32) -> u32 {
        match (index, self.canary) {
            (0, Some(c)) => c,
            _ => self.batch_size_for(total),
        }
    }

    /// Batches needed for `total` nodes.
    pub fn batches_for(&self, total: u32) -> u32 {
        if total == 0 {
            return 0;
        }
        let k = self.batch_size_for(total);
        match self.canary {
            Some(c) if c < total => 1 + (total - c).div_ceil(k),
            Some(_) => 1,
            None => total.div_ceil(k),
        }
    }

    /// Unhealthy tracked pods tolerated among `tracked`: percentages round down.
    pub fn tolerated_unhealthy(&self, tracked: u32) -> u32 {
        match self.max_unhealthy {
            Amount::Count(n) => n,
            Amount::Percent(p) => tracked * p / 100,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(batch: IntOrString, canary: Option<u32>) -> Settings {
        Settings {
            batch_size: Amount::parse("b", &batch, 1, "x").unwrap(),
            canary,
            blue_green: true,
            drain_timeout: Duration::from_secs(1),
            grace_period_seconds: None,
            delete_empty_dir_data: true,
            unmanaged_pods: UnmanagedPodPolicy::Block,
            on_timeout: StopPolicy::Halt,
            ready_timeout: Duration::from_secs(1),
            not_ready_timeout: Duration::from_secs(1),
            max_restarts: 3,
            max_unhealthy: Amount::Percent(10),
            node_ready_timeout: Duration::from_secs(1),
            soak: Duration::ZERO,
            on_failure: StopPolicy::Rollback,
            paused: false,
            windows: Windows::default(),
        }
    }

    #[test]
    fn percent_batches_round_up_and_never_reach_zero() {
        let s = settings(IntOrString::String("25%".into()), None);
        assert_eq!(s.batch_size_for(12), 3);
        assert_eq!(s.batch_size_for(10), 3);
        assert_eq!(s.batch_size_for(1), 1);
        assert_eq!(s.batches_for(10), 4);
        let s = settings(IntOrString::String("1%".into()), None);
        assert_eq!(s.batch_size_for(3), 1);
    }

    #[test]
    fn canary_is_the_first_batch() {
        let s = settings(IntOrString::Int(3), Some(1));
        assert_eq!(s.size_of_batch(0, 10), 1);
        assert_eq!(s.size_of_batch(1, 10), 3);
        assert_eq!(s.batches_for(10), 4); // 1 + 3 + 3 + 3
        assert_eq!(s.batches_for(1), 1);
        assert_eq!(s.batches_for(0), 0);
    }

    #[test]
    fn malformed_amounts_are_rejected_with_the_field_name() {
        for bad in ["0%", "101%", "abc", "-5%", "0", "2.5"] {
            let e = Amount::parse(
                "strategy.batchSize",
                &IntOrString::String(bad.into()),
                1,
                "x",
            )
            .unwrap_err();
            assert!(e.to_string().contains("strategy.batchSize"), "{e}");
        }
        assert!(Amount::parse("f", &IntOrString::Int(0), 1, "x").is_err());
        assert!(Amount::parse("f", &IntOrString::Int(-1), 0, "x").is_err());
        assert_eq!(
            Amount::parse("f", &IntOrString::Int(0), 0, "x"),
            Ok(Amount::Count(0))
        );
        assert_eq!(
            Amount::parse("f", &IntOrString::String("3".into()), 1, "x"),
            Ok(Amount::Count(3))
        );
    }

    #[test]
    fn tolerance_rounds_down() {
        let s = settings(IntOrString::Int(1), None);
        assert_eq!(s.tolerated_unhealthy(9), 0);
        assert_eq!(s.tolerated_unhealthy(25), 2);
    }
}
