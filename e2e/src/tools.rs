//! The command-line tools `e2e/scripts/build.sh` caches (kubectl, helm, …), found the way
//! `e2e/scripts/common.sh` finds them: `$MOLT_CACHE_DIR/bin/<name>-<version>`, the version read
//! from the pinned module under `e2e/tools/`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};

/// `$MOLT_CACHE_DIR/bin`, defaulting like common.sh to `${XDG_CACHE_HOME:-$HOME/.cache}/molt/bin`.
pub fn bin_dir() -> Result<PathBuf> {
    let non_empty = |key: &str| {
        std::env::var_os(key)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let cache = match non_empty("MOLT_CACHE_DIR") {
        Some(dir) => dir,
        None => non_empty("XDG_CACHE_HOME")
            .or_else(|| non_empty("HOME").map(|h| h.join(".cache")))
            .ok_or_else(|| anyhow!("neither MOLT_CACHE_DIR, XDG_CACHE_HOME nor HOME is set"))?
            .join("molt"),
    };
    Ok(cache.join("bin"))
}

/// The version of `module` a consumer go.mod requires (common.sh's `module_version`).
pub fn module_version(go_mod: &Path, module: &str) -> Result<String> {
    let text =
        std::fs::read_to_string(go_mod).with_context(|| format!("reading {}", go_mod.display()))?;
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find_map(|words| match words.as_slice() {
            [m, v, ..] if *m == module => Some(v.to_string()),
            ["require", m, v, ..] if *m == module => Some(v.to_string()),
            _ => None,
        })
        .ok_or_else(|| anyhow!("{} does not require {module}", go_mod.display()))
}

/// The cached binary `name` (as named by common.sh's `bin_path`), which must exist.
pub fn tool(name: &str) -> Result<PathBuf> {
    let (dir, module) = match name {
        "kube-apiserver" | "kube-controller-manager" | "kube-scheduler" | "kubectl" => {
            ("kubernetes", "k8s.io/kubernetes")
        }
        "etcd" => ("etcd", "go.etcd.io/etcd/server/v3"),
        "kwok" => ("kwok", "sigs.k8s.io/kwok"),
        "helm" => ("helm", "helm.sh/helm/v4"),
        _ => bail!("unknown tool {name}"),
    };
    let go_mod = crate::paths::workspace()
        .join("e2e/tools")
        .join(dir)
        .join("go.mod");
    let version = module_version(&go_mod, module)?;
    let path = bin_dir()?.join(format!("{name}-{version}"));
    if !path.is_file() {
        bail!("{} is missing: `make e2e-tools` builds it", path.display());
    }
    Ok(path)
}

/// The kubectl to use: `MOLT_KUBECTL`, else the cached one [`tool`] finds.
pub fn kubectl() -> Result<PathBuf> {
    match std::env::var_os("MOLT_KUBECTL").filter(|v| !v.is_empty()) {
        Some(k) => {
            let k = PathBuf::from(k);
            if !k.is_file() {
                bail!("MOLT_KUBECTL={} is not a file", k.display());
            }
            Ok(k)
        }
        None => tool("kubectl"),
    }
}
