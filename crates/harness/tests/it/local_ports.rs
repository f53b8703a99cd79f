//! The local backend's free-port race: a port found free may be taken before the server binds
//! it, so the server's own bind decides, and a lost port is replaced by another.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use harness::HarnessError;
use harness::backend::local::{Cluster, RunAs, find_bin_dir};

struct ClusterGuard(Cluster);

impl Drop for ClusterGuard {
    fn drop(&mut self) {
        let _ = self.0.destroy();
    }
}

fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn cluster(dir: &tempfile::TempDir, name: &str) -> Option<ClusterGuard> {
    let Ok(bin_dir) = find_bin_dir() else {
        eprintln!("skipped: no local PostgreSQL binaries (initdb, pg_ctl) on this machine");
        return None;
    };
    // The server runs as `postgres` when we are root: it must be able to reach its folder.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    Some(ClusterGuard(Cluster::new(
        dir.path().join(name),
        bin_dir,
        RunAs::detect().unwrap(),
    )))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_taken_after_it_was_found_free_is_replaced_by_another() {
    let dir = tempfile::tempdir().unwrap();
    let Some(cluster) = cluster(&dir, "pg") else {
        return;
    };
    // Someone takes the port between "found free" and the server's bind.
    let squatter = TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let taken = squatter.local_addr().unwrap().port();
    let spare = free_port();

    // Asked for that port explicitly: refused, naming it.
    let err = cluster.0.start(Some(taken), None).unwrap_err();
    assert!(
        matches!(err, HarnessError::PortInUse { port } if port == taken),
        "{err}"
    );
    // Found free by us: the lost port is replaced and the server runs on the next one.
    let admin = cluster
        .0
        .start_trying([Ok(taken), Ok(spare)], None)
        .unwrap();
    assert_eq!(admin.port, spare);
    admin.connect_within(Duration::from_secs(60)).await.unwrap();
    assert_eq!(cluster.0.running_port(), Some(spare));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clusters_that_found_the_same_free_port_both_start() {
    let dir = tempfile::tempdir().unwrap();
    let (Some(a), Some(b)) = (cluster(&dir, "a"), cluster(&dir, "b")) else {
        return;
    };
    // The race as it happens between test processes: both found the same port free.
    let same = free_port();
    let start = |c: &ClusterGuard| {
        let c = c.0.clone();
        std::thread::spawn(move || {
            c.start_trying(
                std::iter::once(Ok(same)).chain(std::iter::repeat_with(|| Ok(free_port()))),
                None,
            )
        })
    };
    let (ta, tb) = (start(&a), start(&b));
    let a_admin = ta.join().unwrap().unwrap();
    let b_admin = tb.join().unwrap().unwrap();
    assert_ne!(a_admin.port, b_admin.port);
    assert!([a_admin.port, b_admin.port].contains(&same));
    for admin in [a_admin, b_admin] {
        admin.connect_within(Duration::from_secs(60)).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_too_deep_for_a_unix_socket_still_starts_on_tcp() {
    let dir = tempfile::tempdir().unwrap();
    // A moved checkout's target/insforge-rls/nextest-…/local can exceed the 107-byte limit.
    let deep = format!("{}/{}", "a-long-checkout-folder-name", "x".repeat(60));
    let Some(cluster) = cluster(&dir, &deep) else {
        return;
    };
    for d in std::path::Path::new(&deep).ancestors().skip(1) {
        if !d.as_os_str().is_empty() {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
            let path = dir.path().join(d);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    let socket = dir.path().join(&deep).join("run/.s.PGSQL.5432");
    assert!(socket.as_os_str().len() > 107, "not deep enough to test");
    let admin = cluster.0.start(None, None).unwrap();
    admin.connect_within(Duration::from_secs(60)).await.unwrap();
}
