//! A server someone else runs, reached by its URL: setup migrates the URL's database and adds
//! the app role and (when the role may create databases) the template; teardown removes only
//! what tests and setup made there.

use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use sqlx::Connection as _;

use super::{Backend, Leftovers, Server, StartCx, Started};
use crate::error::{HarnessError, Result};
use crate::provision::{SetupOptions, Steps, TeardownReport};
use crate::state::{State, StateDir};
use crate::target::{PgTarget, quote_ident};

/// The URL backend.
#[derive(Debug, Clone, Copy)]
pub struct Url;

impl Backend for Url {
    fn name(&self) -> &'static str {
        "url"
    }

    fn start<'a>(
        &'a self,
        cx: &'a StartCx<'a>,
        steps: &'a mut Steps,
    ) -> BoxFuture<'a, Result<Started>> {
        async move {
            // The given URL, else the one an earlier setup here was given.
            let url = cx
                .opts
                .database_url
                .clone()
                .or_else(|| match cx.previous {
                    Some(State {
                        server: Server::Url,
                        admin,
                        ..
                    }) => Some(admin.url()),
                    _ => None,
                })
                .ok_or(HarnessError::UrlBackendWithoutUrl)?;
            let admin = PgTarget::parse(&url)?;
            admin.connect().await?.close().await.ok();
            steps.done("connect");
            Ok(Started {
                server: Server::Url,
                admin,
                reused: true,
            })
        }
        .boxed()
    }

    fn owns_server(&self) -> bool {
        false
    }

    fn scratch_location(&self, _dir: &StateDir) -> Option<std::path::PathBuf> {
        // Someone else's server: its file system is not ours to use.
        None
    }

    fn leftovers(&self, _dir: &StateDir, _opts: &SetupOptions) -> Result<Leftovers> {
        Ok(Leftovers::default())
    }

    fn stop<'a>(
        &'a self,
        _dir: &'a StateDir,
        state: &'a State,
    ) -> BoxFuture<'a, Result<TeardownReport>> {
        async move {
            let mut report = TeardownReport::default();
            let mut conn = state.admin.connect().await?;
            let swept = crate::factory::sweep_orphans(&mut conn, None).await?;
            if swept > 0 {
                report
                    .removed
                    .push(format!("{swept} test databases left by finished test runs"));
            }
            if let Some(template) = &state.template {
                let sql = format!(
                    "alter database {0} with is_template false; drop database if exists {0} with (force)",
                    quote_ident(template)
                );
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&mut conn)
                    .await
                    .map_err(HarnessError::sql("cannot drop the template database"))?;
                report.removed.push(format!("template database {template}"));
            }
            report.kept.push(format!(
                "database {} with its migrations and role {} (they are the URL owner's)",
                state.admin.database, state.app.user
            ));
            Ok(report)
        }
        .boxed()
    }

    fn status<'a>(&'a self, _server: &'a Server) -> BoxFuture<'a, Option<String>> {
        async { None }.boxed()
    }

    fn describe(&self, _server: &Server) -> Option<String> {
        None
    }
}
