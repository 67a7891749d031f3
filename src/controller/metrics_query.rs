//! The metrics analysis' I/O: the queries [`analysis::due`] names, sent to the plan's Prometheus
//! as instant queries (`GET /api/v1/query`), each answer (or failure) handed to the engine as a
//! [`Measurement`]. Nothing here judges a value.

use crate::api::NodeUpdatePlan;
use crate::engine::analysis::{self, Measurement};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use jiff::Timestamp;
use serde_json::Value;
use std::time::Duration;

/// Answers larger than this are refused: a query for a batch's nodes returns a few samples.
const MAX_BODY: usize = 4 << 20;

/// Run every query of `plan` due at `now`; each measurement is stamped `now`.
pub async fn measure(plan: &NodeUpdatePlan, now: Timestamp) -> Vec<Measurement> {
    let Some(spec) = &plan.spec.analysis else {
        return vec![];
    };
    let due = analysis::due(plan, now);
    if due.is_empty() {
        return vec![];
    }
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let timeout: Duration = spec.prometheus.timeout.into();
    let mut out = Vec::with_capacity(due.len());
    for d in due {
        let url = query_url(&spec.prometheus.address, &d.query);
        let result = match tokio::time::timeout(timeout, get(&client, &url)).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "no answer from {} within {}",
                spec.prometheus.address,
                crate::engine::health::human(timeout)
            )),
        };
        if let Err(e) = &result {
            tracing::info!(metric = %d.metric, error = %e, "metric query failed");
        }
        out.push(Measurement {
            batch: d.batch,
            metric: d.metric,
            at: now,
            result,
        });
    }
    out
}

/// `<address>/api/v1/query?query=<query>`.
pub fn query_url(address: &str, query: &str) -> String {
    let q: String = form_urlencoded::byte_serialize(query.as_bytes()).collect();
    format!("{}/api/v1/query?query={q}", address.trim_end_matches('/'))
}

async fn get(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
    url: &str,
) -> Result<Vec<f64>, String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("bad address: {e}"))?;
    // The query itself is in the spec; the words name the endpoint.
    let endpoint = url.split('?').next().unwrap_or(url);
    let response = client
        .get(uri)
        .await
        .map_err(|e| format!("cannot query {endpoint}: {}", chain(&e)))?;
    let status = response.status();
    let body = Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?
        .to_bytes();
    let json: Result<Value, _> = serde_json::from_slice(&body);
    match json {
        Ok(v) => samples(&v).map_err(|e| format!("HTTP {status}: {e}")),
        Err(_) => Err(format!(
            "HTTP {status}: not a Prometheus answer: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        )),
    }
}

/// The sample values of an instant query's answer (vector or scalar).
pub fn samples(answer: &Value) -> Result<Vec<f64>, String> {
    if answer["status"] != "success" {
        return Err(format!(
            "{}: {}",
            answer["errorType"].as_str().unwrap_or("error"),
            answer["error"].as_str().unwrap_or("the query failed")
        ));
    }
    let data = &answer["data"];
    let value = |pair: &Value| -> Result<f64, String> {
        pair[1]
            .as_str()
            .and_then(|s| s.parse::<f64>().ok())
            .ok_or_else(|| format!("not a sample: {pair}"))
    };
    match data["resultType"].as_str() {
        Some("vector") => data["result"]
            .as_array()
            .ok_or("vector result without samples")?
            .iter()
            .map(|s| value(&s["value"]))
            .collect(),
        Some("scalar") => Ok(vec![value(&data["result"])?]),
        Some(other) => Err(format!(
            "result type {other}: the query must return an instant vector or a scalar"
        )),
        None => Err("answer without a resultType".into()),
    }
}

/// An error with its causes, which name what actually went wrong (connection refused…).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn vector_and_scalar_answers_give_their_values() {
        let vector = json!({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {"node": "a"}, "value": [1.0, "0.25"]},
            {"metric": {"node": "b"}, "value": [1.0, "NaN"]}]}});
        let got = samples(&vector).unwrap();
        assert_eq!(got[0], 0.25);
        assert!(got[1].is_nan());
        let scalar =
            json!({"status": "success", "data": {"resultType": "scalar", "result": [1.0, "+Inf"]}});
        assert_eq!(samples(&scalar).unwrap(), vec![f64::INFINITY]);
        let empty = json!({"status": "success", "data": {"resultType": "vector", "result": []}});
        assert_eq!(samples(&empty).unwrap(), Vec::<f64>::new());
    }

    #[test]
    fn errors_and_range_vectors_are_errors_with_the_servers_words() {
        let bad =
            json!({"status": "error", "errorType": "bad_data", "error": "parse error at char 3"});
        assert_eq!(
            samples(&bad).unwrap_err(),
            "bad_data: parse error at char 3"
        );
        let matrix = json!({"status": "success", "data": {"resultType": "matrix", "result": []}});
        assert!(
            samples(&matrix)
                .unwrap_err()
                .contains("instant vector or a scalar")
        );
    }

    #[test]
    fn the_query_is_url_encoded() {
        assert_eq!(
            query_url("http://prom:9090/", r#"up{node=~"^(?:a)$"} > 0"#),
            "http://prom:9090/api/v1/query?query=up%7Bnode%3D%7E%22%5E%28%3F%3Aa%29%24%22%7D+%3E+0"
        );
    }

    #[tokio::test]
    async fn an_unreachable_server_is_an_error_naming_it() {
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        // Port 9 on loopback (discard) is closed in test environments.
        let err = get(&client, &query_url("http://127.0.0.1:9", "up"))
            .await
            .unwrap_err();
        assert!(
            err.starts_with("cannot query http://127.0.0.1:9/api/v1/query: "),
            "{err}"
        );
    }
}
