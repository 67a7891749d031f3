//! Metrics analysis of each batch (`spec.analysis`): Prometheus queries measured during the soak,
//! and what status records of them per batch.
//!
//! The semantics follow Argo Rollouts' AnalysisTemplate: each measurement is Successful, Failed,
//! Inconclusive or Error; more failed measurements than `failureLimit` fail the gate. Unlike
//! Argo, an error or an inconclusive result never fails the plan: it waits, with the reason.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
use kube::core::Duration;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Queries against a Prometheus-compatible API that every batch's soak must pass.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisSpec {
    /// Where the queries go.
    pub prometheus: PrometheusSource,
    /// The metrics measured during each batch's soak (1 to 10, names unique).
    #[schemars(length(min = 1, max = 10))]
    #[x_kube(validation = kube::core::Rule::new("size(self) >= 1 && size(self) <= 10")
        .message("analysis.metrics must list 1 to 10 metrics"))]
    #[x_kube(validation = kube::core::Rule::new("self.all(m, self.exists_one(n, n.name == m.name))")
        .message("analysis.metrics names must be unique"))]
    pub metrics: Vec<MetricSpec>,
}

/// A Prometheus-compatible HTTP API (Prometheus, Thanos, Mimir, VictoriaMetrics…).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusSource {
    /// Base URL of the API; molt sends instant queries to `<address>/api/v1/query`.
    #[schemars(length(max = 1024))]
    #[x_kube(validation = kube::core::Rule::new("self.matches('^http://[^/?#\\\\s]+(/[^?#\\\\s]*)?$')")
        .message("analysis.prometheus.address must be an http:// URL such as http://prometheus.monitoring:9090"))]
    pub address: String,
    /// How long one query may take before it counts as an Error (Go duration, > 0).
    #[serde(default = "default_timeout")]
    #[schemars(extend("maxLength" = 32))]
    #[x_kube(validation = kube::core::Rule::new(crate::api::plan::POSITIVE_DURATION_RULE)
        .message("analysis.prometheus.timeout must be a positive duration such as 10s"))]
    pub timeout: Duration,
}

/// One query and the conditions its result must meet.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.successCondition) || has(self.failureCondition)")
    .message("a metric needs a successCondition, a failureCondition or both"))]
pub struct MetricSpec {
    /// Names the metric in status, conditions and Events.
    #[schemars(length(max = 63))]
    #[x_kube(validation = kube::core::Rule::new("self.matches('^[a-zA-Z0-9]([-_.a-zA-Z0-9]{0,61}[a-zA-Z0-9])?$')")
        .message("metric name must be 1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"))]
    pub name: String,
    /// PromQL instant query. `{{nodes}}` is replaced by a regex matching exactly the batch's
    /// new nodes (escaped for a double-quoted PromQL string), e.g.
    /// `sum(rate(errors_total{node=~"{{nodes}}"}[2m]))`.
    #[schemars(length(min = 1, max = 4096))]
    #[x_kube(validation = kube::core::Rule::new("size(self) >= 1 && size(self) <= 4096")
        .message("metric query must be 1-4096 characters long"))]
    pub query: String,
    /// Every sample must meet this for the measurement to be Successful.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_condition: Option<Comparison>,
    /// Any sample meeting this makes the measurement Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_condition: Option<Comparison>,
    /// Time between measurements (Go duration, > 0).
    #[serde(default = "default_interval")]
    #[schemars(extend("maxLength" = 32))]
    #[x_kube(validation = kube::core::Rule::new(crate::api::plan::POSITIVE_DURATION_RULE)
        .message("metric interval must be a positive duration such as 30s or 1m"))]
    pub interval: Duration,
    /// Failed measurements tolerated per batch; one more fails the gate (0: the first does).
    #[serde(default)]
    #[x_kube(validation = kube::core::Rule::new("self >= 0").message("metric failureLimit must be 0 or more"))]
    pub failure_limit: i32,
    /// Errors in a row (unreachable, bad answer) tolerated before the plan waits for the metric.
    #[serde(default = "default_consecutive_error_limit")]
    #[x_kube(validation = kube::core::Rule::new("self >= 0").message("metric consecutiveErrorLimit must be 0 or more"))]
    pub consecutive_error_limit: i32,
}

/// `<sample value> <operator> <value>`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Comparison {
    /// How the sample compares to `value`.
    pub operator: Operator,
    /// The threshold.
    pub value: f64,
}

/// A comparison operator.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operator {
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "==")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
}

impl Operator {
    /// The operator as written in the spec.
    pub fn symbol(self) -> &'static str {
        match self {
            Operator::Lt => "<",
            Operator::Le => "<=",
            Operator::Gt => ">",
            Operator::Ge => ">=",
            Operator::Eq => "==",
            Operator::Ne => "!=",
        }
    }
}

impl Comparison {
    /// Whether `sample` meets the comparison (a NaN never does).
    pub fn holds(&self, sample: f64) -> bool {
        match self.operator {
            Operator::Lt => sample < self.value,
            Operator::Le => sample <= self.value,
            Operator::Gt => sample > self.value,
            Operator::Ge => sample >= self.value,
            Operator::Eq => sample == self.value,
            Operator::Ne => !sample.is_nan() && sample != self.value,
        }
    }
}

impl std::fmt::Display for Comparison {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.operator.symbol(), self.value)
    }
}

/// What one measurement came to.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum MeasurementPhase {
    /// The success condition held for every sample (or the failure condition for none).
    Successful,
    /// The failure condition held for a sample, or the success condition failed.
    Failed,
    /// No sample, or neither condition decided.
    Inconclusive,
    /// The query could not be answered (unreachable, timeout, bad response).
    Error,
}

/// One metric's measurements in one batch. Counts survive restarts; a measurement is counted
/// once, identified by its time (`lastMeasuredAt`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MetricStatus {
    /// The metric (`spec.analysis.metrics[].name`).
    pub name: String,
    /// What the last measurement came to.
    pub phase: MeasurementPhase,
    /// Successful measurements in this batch.
    #[serde(default)]
    pub successful: u32,
    /// Failed measurements in this batch.
    #[serde(default)]
    pub failed: u32,
    /// Inconclusive measurements in this batch.
    #[serde(default)]
    pub inconclusive: u32,
    /// Measurements that got no answer in this batch.
    #[serde(default)]
    pub error: u32,
    /// Errors since the last answered query.
    #[serde(default)]
    pub consecutive_errors: u32,
    /// The deciding sample of the last answered query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_value: Option<String>,
    /// When the last measurement was taken.
    pub last_measured_at: Time,
    /// The last measurement in words (the error, the condition crossed).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

fn default_interval() -> Duration {
    Duration::from(std::time::Duration::from_secs(30))
}
fn default_timeout() -> Duration {
    Duration::from(std::time::Duration::from_secs(10))
}
fn default_consecutive_error_limit() -> i32 {
    4
}
