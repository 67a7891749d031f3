//! Waiting for conditions: watches with a deadline, and re-evaluated checks over several
//! objects. A failed wait says what it waited for and what it saw last.

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use kube::Resource;
use kube::api::Api;
use kube::runtime::wait::await_condition;
use serde::de::DeserializeOwned;

/// How long waits last unless told otherwise: generous, as the machine may be
/// busy (two cores shared by the control plane, kwok and the tests).
/// `MOLT_E2E_TIMEOUT_SECS` overrides it.
pub fn default_timeout() -> Duration {
    let secs = std::env::var("MOLT_E2E_TIMEOUT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(180);
    Duration::from_secs(secs)
}

/// Waits (watching, not polling) until `cond` holds for the named object, or
/// fails after [`default_timeout`] with the last state of the object.
/// `cond` receives `None` while the object does not exist.
pub async fn wait_for<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    cond: impl Fn(Option<&K>) -> bool,
) -> Result<K>
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + 'static,
{
    wait_for_within(api, name, what, default_timeout(), cond).await
}

/// [`wait_for`] with an explicit deadline.
pub async fn wait_for_within<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    timeout: Duration,
    cond: impl Fn(Option<&K>) -> bool,
) -> Result<K>
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + 'static,
{
    let waited = tokio::time::timeout(timeout, await_condition(api.clone(), name, cond)).await;
    match waited {
        Ok(Ok(Some(obj))) => Ok(obj),
        Ok(Ok(None)) => bail!("{name}: {what}: the object does not exist"),
        Ok(Err(e)) => Err(e).with_context(|| format!("{name}: watching for {what}")),
        Err(_) => {
            let last = api.get_opt(name).await.ok().flatten();
            bail!(
                "{name}: timed out after {}s waiting for {what}; last seen: {last:#?}",
                timeout.as_secs()
            )
        }
    }
}

/// Re-evaluates `check` until it yields `Some`, or fails after
/// [`default_timeout`] with the last message `check` gave. For conditions over
/// several objects (e.g. all pods of a Deployment); the interval only paces the
/// API calls, nothing is judged by time.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, String>>,
{
    let deadline = tokio::time::Instant::now() + default_timeout();
    let mut last = String::from("(not evaluated)");
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(msg) => last = msg,
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "timed out after {}s waiting for {what}; last: {last}",
                default_timeout().as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
