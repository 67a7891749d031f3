//! Where things are: the workspace root, and the cargo profile directory of the running
//! executable.

use std::path::{Path, PathBuf};

/// The workspace root (`e2e/` is one level below it).
pub fn workspace() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// A file or directory of the workspace, e.g. `workspace_file("crds")`.
pub fn workspace_file(relative: &str) -> PathBuf {
    workspace().join(relative)
}

/// The cargo profile directory of a running test (`target/debug`; tests run from
/// `target/debug/deps`).
pub fn profile_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.parent()?.to_path_buf())
}

/// The directory of the running executable (`target/debug` for a binary such as the demo).
pub fn exe_dir() -> Option<PathBuf> {
    Some(std::env::current_exe().ok()?.parent()?.to_path_buf())
}
