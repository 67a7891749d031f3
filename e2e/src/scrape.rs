//! Reading molt's `/metrics`, `/readyz` and `/healthz` over plain HTTP on loopback.

use anyhow::{Context, Result, anyhow};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `GET path` from `addr` (`127.0.0.1:port`): the status code and the body.
pub async fn get(addr: &str, path: &str) -> Result<(u16, String)> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        anyhow::Ok(String::from_utf8_lossy(&raw).into_owned())
    };
    let text = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| anyhow!("GET {addr}{path} timed out"))??;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("GET {addr}{path}: not an HTTP response: {text:?}"))?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow!("GET {addr}{path}: no status in {head:?}"))?;
    Ok((code, body.to_string()))
}

/// `/metrics` of the molt at `addr`.
pub async fn metrics(addr: &str) -> Result<Metrics> {
    let (code, body) = get(addr, "/metrics").await?;
    anyhow::ensure!(code == 200, "/metrics answered {code}: {body}");
    Ok(Metrics(body))
}

/// A Prometheus text exposition.
#[derive(Debug, Clone)]
pub struct Metrics(pub String);

impl Metrics {
    /// The value of the series written exactly as `series` (`name{label="v",...}`, labels in
    /// molt's order), if present.
    pub fn value(&self, series: &str) -> Option<f64> {
        self.0.lines().find_map(|line| {
            let rest = line.strip_prefix(series)?;
            rest.strip_prefix(' ')?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
    }

    /// [`Metrics::value`], with 0 for a series not (yet) exported.
    pub fn value_or_zero(&self, series: &str) -> f64 {
        self.value(series).unwrap_or(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_read_by_exact_series() {
        let m = Metrics(
            "# HELP x\nmolt_plan_nodes{plan=\"p\"} 6\nmolt_plan_nodes{plan=\"pq\"} 2\nmolt_leader 1\n"
                .into(),
        );
        assert_eq!(m.value("molt_plan_nodes{plan=\"p\"}"), Some(6.0));
        assert_eq!(m.value("molt_leader"), Some(1.0));
        assert_eq!(m.value("molt_plan_nodes{plan=\"x\"}"), None);
        assert_eq!(
            m.value_or_zero("molt_evictions_total{outcome=\"accepted\"}"),
            0.0
        );
    }
}
