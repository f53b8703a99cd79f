//! Postgres in a container, started through testcontainers and published on 127.0.0.1 only.
//! Containers are marked for reuse, so they outlive the process; teardown removes them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use sqlx::Connection as _;

use testcontainers::bollard::Docker as Engine;
use testcontainers::bollard::models::PortBinding;
use testcontainers::bollard::query_parameters::RemoveContainerOptionsBuilder;
use testcontainers::core::client::ClientError;
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{GenericImage, ImageExt, ReuseDirective, TestcontainersError};

use super::{Backend, Leftovers, Server, StartCx, Started};
use crate::error::{HarnessError, Result};
use crate::provision::{SetupOptions, Steps, TeardownReport};
use crate::state::{State, StateDir};
use crate::target::PgTarget;

/// The official image; CI without a registry passes a locally built one with --image.
pub const DEFAULT_IMAGE: &str = "postgres:15";

/// Label on every container this harness starts, so they can be found and told apart.
pub const LABEL: &str = "dev.insforge-rls.managed";

const PING_TIMEOUT: Duration = Duration::from_secs(3);

fn endpoint() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
}

fn client() -> Result<Engine> {
    Engine::connect_with_defaults().map_err(|e| HarnessError::DockerUnreachable {
        endpoint: endpoint(),
        reason: e.to_string(),
    })
}

/// Whether a Docker engine answers, with the reason when it does not.
pub async fn ping() -> Result<()> {
    let docker = client()?;
    match tokio::time::timeout(PING_TIMEOUT, docker.ping()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(HarnessError::DockerUnreachable {
            endpoint: endpoint(),
            reason: e.to_string(),
        }),
        Err(_) => Err(HarnessError::DockerUnreachable {
            endpoint: endpoint(),
            reason: format!("no answer within {} s", PING_TIMEOUT.as_secs()),
        }),
    }
}

/// What to start.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    pub image: String,
    pub name: String,
    pub superuser_password: String,
}

/// A started (or reused) container.
#[derive(Debug, Clone)]
pub struct StartedContainer {
    pub id: String,
    pub admin: PgTarget,
}

/// `name:tag`, where a registry host may carry a port (`host:5000/pg:15`).
fn split_image(image: &str) -> (String, String) {
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') && !name.is_empty() => {
            (name.to_owned(), tag.to_owned())
        }
        _ => (image.to_owned(), "latest".to_owned()),
    }
}

/// Starts the container, or finds the running one with the same name, and returns its address.
/// Readiness is left to the caller (a bounded connection poll), because the official image
/// prints "ready to accept connections" once for its init server and again for the real one.
pub async fn start(spec: &ContainerSpec) -> Result<StartedContainer> {
    ping().await?;
    pull_if_missing(&spec.image).await?;
    let (name, tag) = split_image(&spec.image);
    let request = GenericImage::new(name, tag)
        .with_exposed_port(5432.tcp())
        .with_wait_for(WaitFor::Nothing)
        .with_env_var("POSTGRES_PASSWORD", &spec.superuser_password)
        .with_cmd([
            "postgres",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=300",
        ])
        .with_container_name(&spec.name)
        .with_label(LABEL, "true")
        .with_reuse(ReuseDirective::Always)
        .with_startup_timeout(Duration::from_secs(120))
        // /dev/shm holds the scratch tablespace for per-test databases (Docker's default is
        // 64 MB); memory is used only as databases fill it.
        .with_shm_size(1 << 30)
        .with_host_config_modifier(|host| {
            // Publish on loopback only: the server has a password, but it is a test server.
            host.publish_all_ports = Some(false);
            host.port_bindings = Some(HashMap::from([(
                "5432/tcp".to_owned(),
                Some(vec![PortBinding {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: Some(String::new()),
                }]),
            )]));
        });

    let container = request
        .start()
        .await
        .map_err(|e| map_start_error(&spec.image, e))?;
    let port = container
        .get_host_port_ipv4(5432)
        .await
        .map_err(|e| HarnessError::Container {
            reason: format!("no published port: {e}"),
        })?;
    let id = container.id().to_owned();
    // Marked for reuse, so dropping the handle leaves the container running.
    drop(container);
    Ok(StartedContainer {
        id,
        admin: PgTarget::new(
            "127.0.0.1",
            port,
            "postgres",
            &spec.superuser_password,
            "postgres",
        ),
    })
}

/// Pulls `image` when the engine does not have it, with progress on stderr: a first pull can
/// take minutes, and testcontainers' own pull is silent until it ends.
async fn pull_if_missing(image: &str) -> Result<()> {
    use futures_util::StreamExt as _;
    use testcontainers::bollard::query_parameters::CreateImageOptionsBuilder;

    let docker = client()?;
    match docker.inspect_image(image).await {
        Ok(_) => return Ok(()),
        Err(testcontainers::bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }) => {}
        // Anything else: let the start report it with its own wording.
        Err(_) => return Ok(()),
    }
    let (name, tag) = split_image(image);
    eprintln!("pulling image {image} (not on this machine yet)");
    let options = CreateImageOptionsBuilder::default()
        .from_image(&name)
        .tag(&tag)
        .build();
    let mut stream = docker.create_image(Some(options), None, None);
    let mut progress = PullProgress::default();
    while let Some(event) = stream.next().await {
        let event = event.map_err(|e| HarnessError::ImageUnavailable {
            image: image.to_owned(),
            reason: one_line(&e.to_string()),
        })?;
        if let Some(detail) = event.error_detail.and_then(|d| d.message) {
            return Err(HarnessError::ImageUnavailable {
                image: image.to_owned(),
                reason: one_line(&detail),
            });
        }
        let update = PullEvent {
            id: event.id.as_deref(),
            status: event.status.as_deref().unwrap_or(""),
            current: event.progress_detail.as_ref().and_then(|p| p.current),
            total: event.progress_detail.as_ref().and_then(|p| p.total),
        };
        if let Some(line) = progress.line(&update, std::time::Instant::now()) {
            eprintln!("  {line}");
        }
    }
    eprintln!("pulled {image}");
    Ok(())
}

/// One event of the engine's pull stream, as [`PullProgress`] needs it.
#[derive(Debug, Clone, Copy)]
struct PullEvent<'a> {
    id: Option<&'a str>,
    status: &'a str,
    current: Option<i64>,
    total: Option<i64>,
}

/// Turns the pull stream into lines a person can follow: each layer's milestones as they
/// happen, and the bytes downloaded so far at most every two seconds.
#[derive(Debug, Default)]
struct PullProgress {
    layers: std::collections::BTreeMap<String, (i64, i64)>,
    last_summary: Option<std::time::Instant>,
}

impl PullProgress {
    fn line(&mut self, event: &PullEvent<'_>, now: std::time::Instant) -> Option<String> {
        match (event.status, event.id) {
            ("Downloading", Some(id)) => {
                let entry = self.layers.entry(id.to_owned()).or_default();
                *entry = (
                    event.current.unwrap_or(entry.0),
                    event.total.unwrap_or(entry.1),
                );
                if self
                    .last_summary
                    .is_some_and(|t| now.duration_since(t) < Duration::from_secs(2))
                {
                    return None;
                }
                self.last_summary = Some(now);
                let (done, total) = self
                    .layers
                    .values()
                    .fold((0, 0), |(d, t), (c, n)| (d + c, t + n));
                Some(format!(
                    "downloading: {:.1} of {:.1} MB",
                    done as f64 / 1e6,
                    total as f64 / 1e6
                ))
            }
            ("Extracting" | "Waiting" | "Verifying Checksum", _) | ("", _) => None,
            (status, Some(id)) => Some(format!("{id}: {status}")),
            (status, None) => Some(status.to_owned()),
        }
    }
}

fn map_start_error(image: &str, e: TestcontainersError) -> HarnessError {
    match e {
        TestcontainersError::Client(ClientError::PullImage { err, .. }) => {
            HarnessError::ImageUnavailable {
                image: image.to_owned(),
                reason: one_line(&err.to_string()),
            }
        }
        TestcontainersError::Client(ClientError::Init(err)) => HarnessError::DockerUnreachable {
            endpoint: endpoint(),
            reason: one_line(&err.to_string()),
        },
        other => HarnessError::Container {
            reason: one_line(&other.to_string()),
        },
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Removes the container and its anonymous volumes; a container already gone is fine.
pub async fn remove(id_or_name: &str) -> Result<bool> {
    let docker = client()?;
    let options = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    match docker.remove_container(id_or_name, Some(options)).await {
        Ok(()) => Ok(true),
        Err(testcontainers::bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }) => Ok(false),
        Err(e) => Err(HarnessError::Container {
            reason: format!("cannot remove {id_or_name}: {}", one_line(&e.to_string())),
        }),
    }
}

/// Whether the container exists and runs.
pub async fn is_running(id: &str) -> Result<bool> {
    let docker = client()?;
    match docker.inspect_container(id, None).await {
        Ok(info) => Ok(info.state.and_then(|s| s.running).unwrap_or(false)),
        Err(testcontainers::bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }) => Ok(false),
        Err(e) => Err(HarnessError::Container {
            reason: one_line(&e.to_string()),
        }),
    }
}

/// One container per state folder (so per checkout, and apart for tests and CI runs that use
/// their own folder): the name carries a hash of the folder's path.
pub fn default_container_name(dir: &StateDir) -> String {
    let hash = dir
        .root()
        .to_string_lossy()
        .bytes()
        .fold(0xcbf29ce484222325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
        });
    format!("insforge-rls-{:08x}", hash as u32)
}

/// The docker backend.
#[derive(Debug, Clone, Copy)]
pub struct Docker;

impl Backend for Docker {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn start<'a>(
        &'a self,
        cx: &'a StartCx<'a>,
        steps: &'a mut Steps,
    ) -> BoxFuture<'a, Result<Started>> {
        async move {
            let previous = cx.previous;
            let password =
                previous.map_or_else(|| crate::random_token(32), |s| s.admin.password.clone());
            let image = match previous.map(|s| &s.server) {
                Some(Server::Docker { image, .. }) => image.clone(),
                _ => cx.opts.image.clone(),
            };
            let was_running = match previous.map(|s| &s.server) {
                Some(Server::Docker { container_id, .. }) => {
                    is_running(container_id).await.unwrap_or(false)
                }
                _ => false,
            };
            let container_name = cx
                .opts
                .container_name
                .clone()
                .unwrap_or_else(|| default_container_name(cx.dir));
            let started = start(&ContainerSpec {
                image: image.clone(),
                name: container_name.clone(),
                superuser_password: password,
            })
            .await?;
            let server = Server::Docker {
                container_id: started.id.clone(),
                container_name: container_name.clone(),
                image,
            };
            // Recorded before waiting, so an interrupted setup finds its container next time.
            cx.record(&server, &started.admin)?;
            steps.done("start container");
            match started.admin.connect_within(Duration::from_secs(90)).await {
                Err(HarnessError::Connect { reason, .. })
                    if previous.is_none() && reason.contains("password") =>
                {
                    return Err(HarnessError::OrphanContainer {
                        name: container_name,
                    });
                }
                other => other?.close().await.ok(),
            };
            steps.done("wait for postgres");
            Ok(Started {
                server,
                admin: started.admin,
                reused: was_running,
            })
        }
        .boxed()
    }

    fn scratch_location(&self, _dir: &StateDir) -> Option<PathBuf> {
        Some(PathBuf::from(crate::scratch::CONTAINER_LOCATION))
    }

    fn leftovers(&self, dir: &StateDir, opts: &SetupOptions) -> Result<Leftovers> {
        Ok(Leftovers {
            container: Some(
                opts.container_name
                    .clone()
                    .unwrap_or_else(|| default_container_name(dir)),
            ),
            ..Leftovers::default()
        })
    }

    fn stop<'a>(
        &'a self,
        _dir: &'a StateDir,
        state: &'a State,
    ) -> BoxFuture<'a, Result<TeardownReport>> {
        async move {
            let mut report = TeardownReport::default();
            if let Server::Docker {
                container_id,
                container_name,
                ..
            } = &state.server
                && remove(container_id).await?
            {
                report.removed.push(format!("container {container_name}"));
            }
            Ok(report)
        }
        .boxed()
    }

    fn status<'a>(&'a self, server: &'a Server) -> BoxFuture<'a, Option<String>> {
        async move {
            let Server::Docker {
                container_id,
                container_name,
                ..
            } = server
            else {
                return None;
            };
            Some(match is_running(container_id).await {
                Ok(true) => format!("container {container_name} running"),
                Ok(false) => format!("container {container_name} not running"),
                Err(e) => format!("container {container_name}: {e}"),
            })
        }
        .boxed()
    }

    fn describe(&self, server: &Server) -> Option<String> {
        match server {
            Server::Docker {
                container_name,
                image,
                ..
            } => Some(format!("container {container_name} ({image})")),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{PullEvent, PullProgress, split_image};
    use std::time::{Duration, Instant};

    #[test]
    fn pull_progress_names_milestones_and_sums_bytes_at_most_every_two_seconds() {
        let mut p = PullProgress::default();
        let t0 = Instant::now();
        let ev = |id, status, current, total| PullEvent {
            id,
            status,
            current,
            total,
        };
        assert_eq!(
            p.line(&ev(None, "Pulling from library/postgres", None, None), t0)
                .as_deref(),
            Some("Pulling from library/postgres")
        );
        assert_eq!(
            p.line(&ev(Some("a1"), "Pulling fs layer", None, None), t0)
                .as_deref(),
            Some("a1: Pulling fs layer")
        );
        let first = p.line(
            &ev(Some("a1"), "Downloading", Some(1_000_000), Some(4_000_000)),
            t0,
        );
        assert_eq!(first.as_deref(), Some("downloading: 1.0 of 4.0 MB"));
        let soon = t0 + Duration::from_millis(500);
        assert_eq!(
            p.line(
                &ev(Some("b2"), "Downloading", Some(500_000), Some(1_000_000)),
                soon
            ),
            None,
            "at most one byte count every two seconds"
        );
        let later = t0 + Duration::from_secs(3);
        assert_eq!(
            p.line(&ev(Some("a1"), "Downloading", Some(3_000_000), None), later)
                .as_deref(),
            Some("downloading: 3.5 of 5.0 MB")
        );
        assert_eq!(
            p.line(&ev(Some("a1"), "Extracting", Some(1), Some(2)), later),
            None
        );
        assert_eq!(
            p.line(&ev(Some("a1"), "Pull complete", None, None), later)
                .as_deref(),
            Some("a1: Pull complete")
        );
    }

    #[test]
    fn splits_image_references() {
        assert_eq!(split_image("postgres:15"), ("postgres".into(), "15".into()));
        assert_eq!(
            split_image("postgres"),
            ("postgres".into(), "latest".into())
        );
        assert_eq!(
            split_image("reg:5000/pg"),
            ("reg:5000/pg".into(), "latest".into())
        );
        assert_eq!(
            split_image("reg:5000/pg:15-debian"),
            ("reg:5000/pg".into(), "15-debian".into())
        );
    }
}
