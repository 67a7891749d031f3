//! What the harness's own controllers (`fault-mirror`, `kwok-machine`) share: their command line
//! (`--ready-file PATH`, `--print-path`) and their run loop, which announces readiness through
//! the ready file once the controller's cache is filled.

use std::fmt::Display;
use std::hash::Hash;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use futures::{Stream, StreamExt};
use kube::Resource;
use kube::runtime::reflector::Store;

/// The command line of a harness controller.
#[derive(Debug, Default)]
pub struct Args {
    /// Written once the controller's cache is filled (`e2e/cluster.sh` waits for it).
    pub ready_file: Option<PathBuf>,
    /// The flags of `extra` that were given.
    pub flags: Vec<String>,
}

/// Parses `--ready-file PATH` and the flags in `extra`. `--print-path` prints the executable's
/// path and exits: that is how `e2e/cluster.sh` learns where cargo put the binary it just built.
pub fn args(program: &str, extra: &[&str]) -> Result<Args> {
    let mut args = std::env::args().skip(1);
    let mut parsed = Args::default();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--ready-file" => {
                let path = args
                    .next()
                    .ok_or_else(|| anyhow!("--ready-file needs a path"))?;
                parsed.ready_file = Some(PathBuf::from(path));
            }
            "--print-path" => {
                println!("{}", std::env::current_exe()?.display());
                std::process::exit(0);
            }
            flag if extra.contains(&flag) => parsed.flags.push(arg),
            other => {
                let flags: String = extra.iter().map(|f| format!(" | {f}")).collect();
                bail!(
                    "unknown argument {other:?}; usage: {program} [--ready-file PATH | --print-path{flags}]"
                )
            }
        }
    }
    Ok(parsed)
}

/// Drives `run` (a controller's result stream, which ends on SIGTERM) and logs its errors;
/// meanwhile writes the ready file once `store` is filled. A failure to get ready ends the
/// process.
pub async fn run<K, T, E>(
    program: &'static str,
    run: impl Stream<Item = Result<T, E>>,
    store: Store<K>,
    ready_file: Option<PathBuf>,
) where
    K: Resource + Clone + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Send + Sync,
    E: Display,
{
    let ready = tokio::spawn(async move {
        if let Err(e) = announce_ready(store, ready_file).await {
            eprintln!("{program}: {e:#}");
            std::process::exit(1);
        }
        eprintln!("{program}: watching");
    });
    run.for_each(|res| async move {
        if let Err(e) = res {
            eprintln!("{program}: {e}");
        }
    })
    .await;
    ready.abort();
}

async fn announce_ready<K>(store: Store<K>, ready_file: Option<PathBuf>) -> Result<()>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    // Store::wait_until_ready wakes only one of several concurrent waiters (the
    // controller waits on it too), so ask again now and then.
    loop {
        match tokio::time::timeout(Duration::from_millis(200), store.wait_until_ready()).await {
            Ok(res) => break res.map_err(|e| anyhow!("cache: {e}"))?,
            Err(_) => continue,
        }
    }
    if let Some(path) = ready_file {
        std::fs::write(&path, b"ready\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
