//! A real Prometheus server for a test, scraping an [`Exporter`] the test controls.
//!
//! The server (`prometheus` on the PATH: Debian's package, installed by `scripts/prometheus.sh`)
//! listens on a free loopback port, keeps its data under the cluster state directory, scrapes
//! every second, and can be stopped and started again on the same port and data.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, anyhow, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

use crate::{cluster_dir, eventually, scrape};

/// A text-exposition endpoint (`GET /metrics`) serving the series the test sets.
#[derive(Clone)]
pub struct Exporter {
    addr: String,
    series: Arc<Mutex<BTreeMap<String, f64>>>,
}

impl Exporter {
    /// Serves on a free loopback port until the test process ends.
    pub async fn start() -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?.to_string();
        let series: Arc<Mutex<BTreeMap<String, f64>>> = Arc::default();
        let shared = series.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let shared = shared.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = stream.read(&mut buf).await;
                    let body: String = match shared.lock() {
                        Ok(s) => s.iter().map(|(k, v)| format!("{k} {v}\n")).collect(),
                        Err(_) => String::new(),
                    };
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                });
            }
        });
        Ok(Self { addr, series })
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Serve `series` (`name{label="v"}`) with `value` from now on.
    pub fn set(&self, series: &str, value: f64) {
        if let Ok(mut s) = self.series.lock() {
            s.insert(series.to_string(), value);
        }
    }

    /// Serve `series` with `value` unless it is served already.
    pub fn set_default(&self, series: &str, value: f64) {
        if let Ok(mut s) = self.series.lock() {
            s.entry(series.to_string()).or_insert(value);
        }
    }
}

/// A `prometheus` process scraping one target. Killed on drop.
pub struct Prometheus {
    addr: String,
    dir: PathBuf,
    child: Option<Child>,
}

impl Prometheus {
    /// Starts a server named `name` (its directory under the cluster state directory) that
    /// scrapes `target` (`host:port`) every second, and waits until it is ready.
    pub async fn start(name: &str, target: &str) -> Result<Self> {
        let dir = cluster_dir().join("prometheus").join(name);
        std::fs::create_dir_all(dir.join("data"))
            .with_context(|| format!("creating {}", dir.display()))?;
        let config = format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             scrape_configs:\n- job_name: test\n  static_configs:\n  - targets: ['{target}']\n"
        );
        std::fs::write(dir.join("prometheus.yml"), config)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut p = Self {
            addr: format!("127.0.0.1:{port}"),
            dir,
            child: None,
        };
        p.resume().await?;
        Ok(p)
    }

    /// `http://127.0.0.1:port`, for `spec.analysis.prometheus.address`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Kills the server; its port stops answering.
    pub async fn stop(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().await.context("killing prometheus")?;
        }
        Ok(())
    }

    /// Starts the server again on the same port and data, and waits until it is ready.
    pub async fn resume(&mut self) -> Result<()> {
        if self.child.is_some() {
            bail!("prometheus is already running");
        }
        let log = std::fs::File::create(self.dir.join("prometheus.log"))?;
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                self.dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                self.dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={}", self.addr))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                anyhow!("starting prometheus (install it with scripts/prometheus.sh): {e}")
            })?;
        self.child = Some(child);
        let addr = self.addr.clone();
        eventually("prometheus to be ready", || {
            let addr = addr.clone();
            async move {
                match scrape::get(&addr, "/-/ready").await {
                    Ok((200, _)) => Ok(Some(())),
                    Ok((code, body)) => Err(format!("/-/ready answered {code}: {body}")),
                    Err(e) => Err(e.to_string()),
                }
            }
        })
        .await
    }
}
