//! The one workspace-root finder, for the tools that run inside a Cargo workspace (the
//! harness's state folder, the app's dev users file and `.env`). Here because every crate that
//! needs it already depends on this one; it reads nothing from the database.

use std::path::{Path, PathBuf};

/// The Cargo workspace in use, found at run time — never the path a crate was compiled at, so a
/// moved checkout and `nextest archive` + `--workspace-remap` work: the nearest folder with a
/// `[workspace]` Cargo.toml above `CARGO_MANIFEST_DIR` as cargo and nextest set it for the
/// running test or `cargo run`, else above the current folder, else the current folder.
pub fn workspace_root() -> PathBuf {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from);
    manifest_dir
        .iter()
        .chain(std::iter::once(&cwd))
        .find_map(|start| workspace_above(start))
        .unwrap_or(cwd)
}

/// The nearest folder at or above `start` whose Cargo.toml has a `[workspace]` table.
pub fn workspace_above(start: &Path) -> Option<PathBuf> {
    start.ancestors().find_map(|dir| {
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).ok()?;
        manifest
            .lines()
            .any(|line| line.trim() == "[workspace]")
            .then(|| dir.to_path_buf())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A unique empty folder under the system's temporary folder (this crate has no tempfile).
    fn scratch(name: &str) -> PathBuf {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir =
            std::env::temp_dir().join(format!("pg-identity-{name}-{}-{nanos}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn the_workspace_is_found_from_any_folder_inside_it_at_run_time() {
        let dir = scratch("ws");
        let ws = dir.join("moved-checkout");
        std::fs::create_dir_all(ws.join("crates/harness/src")).unwrap();
        std::fs::write(ws.join("Cargo.toml"), "[workspace]\nmembers = []\n").unwrap();
        std::fs::write(
            ws.join("crates/harness/Cargo.toml"),
            "[package]\nname = \"h\"\n",
        )
        .unwrap();
        let found = workspace_above(&ws.join("crates/harness/src"));
        let outside = workspace_above(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(found.as_deref(), Some(ws.as_path()));
        assert_eq!(outside, None);
        // In this test process (cargo or nextest sets CARGO_MANIFEST_DIR at run time).
        assert!(workspace_root().join("fixtures/users.json").is_file());
    }
}
