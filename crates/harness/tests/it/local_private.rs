//! The local backend in a state folder its server's user cannot reach (issue 24, "Bad input"):
//! as root the server runs as `postgres`, and a folder under a private (0700) parent — a
//! repository in `/root`, a temporary folder — is out of its reach. Setup still works (the
//! cluster moves to a folder of its own), status sees it, and teardown leaves nothing behind.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use harness::backend::local::{RunAs, find_bin_dir, moved_cluster_dir};
use harness::{BackendChoice, Server, SetupOptions, StateDir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_folder_under_a_private_parent_sets_up_and_tears_down_leaving_nothing() {
    if find_bin_dir().is_err() {
        eprintln!("skipped: no local PostgreSQL binaries (initdb, pg_ctl) on this machine");
        return;
    }
    let parent = tempfile::tempdir().unwrap();
    std::fs::set_permissions(parent.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let dir = StateDir::at(parent.path().join("state"));
    let run_as = RunAs::detect().unwrap();
    let moved = run_as.as_ref().map(|u| moved_cluster_dir(&dir, u));
    let scratch = harness::scratch::local_location(dir.root());
    let opts = SetupOptions {
        backend: BackendChoice::Local,
        ..SetupOptions::default()
    };

    // Whatever fails in between, teardown runs before anything is asserted.
    let outcome = async {
        let report = harness::setup(&dir, &opts).await?;
        let status = harness::status(&dir).await?;
        Ok::<_, harness::HarnessError>((report, status))
    }
    .await;
    let teardown = harness::teardown(&dir).await;

    let (report, status) = outcome.unwrap();
    let Server::Local { data_dir, .. } = &report.state.server else {
        panic!("not a local server: {:?}", report.state.server);
    };
    match &moved {
        // As root: the cluster lives where `postgres` reaches it, recorded in the state.
        Some(moved) => assert_eq!(data_dir, &moved.join("pgdata")),
        // As anyone else the server runs as ourselves, in the state folder.
        None => assert_eq!(data_dir, &dir.local_dir().join("pgdata")),
    }
    assert!(status.reachable.is_ok(), "{:?}", status.reachable);
    let seen = status.server.unwrap_or_default();
    assert!(seen.contains("running on port"), "status: {seen}");

    let teardown = teardown.unwrap();
    assert!(
        teardown
            .removed
            .iter()
            .any(|r| r.starts_with("local cluster in")),
        "{teardown:?}"
    );
    let left: Vec<PathBuf> = std::fs::read_dir(parent.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "left in the private folder: {left:?}");
    if let Some(moved) = &moved {
        assert!(!moved.exists(), "moved cluster left at {}", moved.display());
    }
    assert!(
        !scratch.exists(),
        "scratch folder left at {}",
        scratch.display()
    );
}
