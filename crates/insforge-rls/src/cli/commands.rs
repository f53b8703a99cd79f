//! The handlers of every command but `check`.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result};
use harness::PgTarget;

use super::report::{Output, write_or_print};
use super::{
    Context, Format, InputError, LintArgs, LintFormat, MigrateArgs, SetupArgs, TokenArgs,
    VerifyArgs,
};

pub(super) async fn setup(ctx: &Context, args: SetupArgs) -> Result<ExitCode> {
    let opts = super::setup_options(ctx, args)?;
    let dir = &ctx.state;
    let started = std::time::Instant::now();
    let report = harness::setup(dir, &opts).await.context("setup failed")?;
    let state = &report.state;
    println!(
        "insforge-rls: {} backend, {}",
        state.server.kind(),
        if report.reused_server {
            "server reused"
        } else {
            "server started"
        }
    );
    if let Some(server) = state.server.describe() {
        println!("  server      {server}");
    }
    println!("  database    {}", state.admin.redacted());
    println!(
        "  app role    {} (LOGIN NOINHERIT, member of anon and authenticated, no privileges of its own)",
        state.app.user
    );
    println!("  migrations  {}", describe(&report.migrations));
    match (&state.template, &report.template_migrations) {
        (Some(t), Some(m)) => println!("  template    {t} ({})", describe(m)),
        _ => println!("  template    none"),
    }
    if let Some(scratch) = &report.scratch {
        println!(
            "  scratch     tablespace {} on {} (per-test databases in memory)",
            harness::scratch::SCRATCH_TABLESPACE,
            scratch.display()
        );
    }
    println!("  state       {}", dir.env_file().display());
    if let Some(path) = &state.env_export {
        println!(
            "  env file    {} (DATABASE_URL, INSFORGE_JWT_SECRET, …)",
            path.display()
        );
    }
    for warning in &report.warnings {
        println!("  warning     {warning}");
    }
    println!("  lint        {}", setup_lint_summary(ctx, state).await);
    let steps: Vec<String> = report
        .steps
        .iter()
        .map(|(name, d)| format!("{name} {}", ms(*d)))
        .collect();
    println!(
        "  took        {} ({})",
        ms(started.elapsed()),
        steps.join(" · ")
    );
    println!("next: {}", ctx.next_after_setup);
    Ok(ExitCode::SUCCESS)
}

fn describe(m: &harness::MigrationReport) -> String {
    if m.applied.is_empty() {
        format!("up to date ({} applied before)", m.already_applied)
    } else {
        format!(
            "applied {} ({} before)",
            m.applied.join(", "),
            m.already_applied
        )
    }
}

fn ms(d: Duration) -> String {
    if d.as_millis() >= 1000 {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        format!("{} ms", d.as_millis())
    }
}

pub(super) async fn teardown(ctx: &Context) -> Result<ExitCode> {
    let report = harness::teardown(&ctx.state)
        .await
        .context("teardown failed")?;
    for r in &report.removed {
        println!("removed {r}");
    }
    for k in &report.kept {
        println!("kept    {k}");
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn status(ctx: &Context) -> Result<ExitCode> {
    let status = harness::status(&ctx.state).await?;
    let s = &status.state;
    println!("backend     {}", s.server.kind());
    if let Some(server) = s.server.describe() {
        println!("location    {server}");
    }
    println!("database    {}", s.admin.redacted());
    println!("app role    {}", s.app.user);
    println!("template    {}", s.template.as_deref().unwrap_or("none"));
    match &status.reachable {
        Ok(version) => {
            println!("server      answering ({version})");
            println!("migrations  {}", status.migrations.join(", "));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("server      NOT answering: {e}");
            println!("            run `{} setup` to start it again", ctx.program);
            Ok(ExitCode::FAILURE)
        }
    }
}

pub(super) async fn migrate(ctx: &Context, args: MigrateArgs) -> Result<ExitCode> {
    let migrations = super::migrations_from(args.migrations.as_deref())?;
    let targets: Vec<PgTarget> = match args.database_url {
        Some(url) => vec![PgTarget::parse(&url)?],
        None => super::targets_of(&ctx.state.require()?),
    };
    for target in targets {
        let report = migrations
            .apply(&target)
            .await
            .with_context(|| format!("migrating {}", target.redacted()))?;
        println!("{}: {}", target.redacted(), describe(&report));
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn token(ctx: &Context, args: TokenArgs) -> Result<ExitCode> {
    // Layering as everywhere: --jwt-secret / INSFORGE_JWT_SECRET, else the secret from setup.
    let secret = match (ctx.state.load()?, args.jwt_secret) {
        (Some(state), None) => state.jwt_secret,
        (_, Some(secret)) => secret,
        (None, None) => anyhow::bail!(
            "no JWT secret: run `{} setup` first, or pass --jwt-secret / INSFORGE_JWT_SECRET",
            ctx.program
        ),
    };
    let secret = clerk_token::Secret::new(secret)?;
    let mut user = match args.user {
        Some(id) => clerk_token::ClerkUser::new(id),
        None => {
            let user = clerk_token::ClerkUser::generate();
            eprintln!("user: {}", user.id);
            user
        }
    };
    if let Some(email) = args.email {
        user = user.with_email(email);
    }
    if let Some(claims) = args.claims {
        let claims: serde_json::Value =
            serde_json::from_str(&claims).context("--claims is not JSON")?;
        let serde_json::Value::Object(map) = claims else {
            anyhow::bail!("--claims must be a JSON object, e.g. '{{\"org_id\":\"org_2…\"}}'");
        };
        for (name, value) in map {
            user = user.with_claim(name, value);
        }
    }
    let template = clerk_token::ClerkTemplate::insforge(secret).with_lifetime_secs(args.ttl);
    println!("{}", template.mint(&user)?);
    Ok(ExitCode::SUCCESS)
}

/// A one-line lint verdict for setup's summary; setup never fails on it.
async fn setup_lint_summary(ctx: &Context, state: &harness::State) -> String {
    let opts = rls_lint::LintOptions {
        app_role: Some(state.app.user.clone()),
        ..Default::default()
    };
    match rls_lint::lint_url(&state.admin.url(), &opts).await {
        Ok(report) => {
            let s = report.summary();
            if s.error + s.warn + s.info == 0 {
                "clean".to_owned()
            } else {
                format!(
                    "{} errors, {} warnings, {} notes — run `{} lint` for details",
                    s.error, s.warn, s.info, ctx.program
                )
            }
        }
        Err(e) => format!("not run: {e}"),
    }
}

pub(super) async fn lint(ctx: &Context, args: LintArgs) -> Result<ExitCode> {
    let state = ctx.state.load()?;
    let url = match (&args.database_url, &state) {
        (Some(url), _) => url.clone(),
        (None, Some(state)) => state.admin.url(),
        (None, None) => anyhow::bail!(
            "nothing to lint: pass --database-url (or INSFORGE_RLS_DATABASE_URL), or run `{} setup` first",
            ctx.program
        ),
    };
    let app_role = match args.app_role.as_deref() {
        Some("none") => None,
        Some(role) => Some(role.to_owned()),
        None => Some(state.map_or_else(|| "rls_app".to_owned(), |s| s.app.user)),
    };
    // The spec given, else the one in the current folder, if any: its intent quiets declared
    // public reads.
    let spec = args.spec.clone().or_else(|| super::find_spec(None).ok());
    let spec = match &spec {
        Some(path) => Some(rls_suite::spec::Spec::load(path).map_err(|e| InputError(e.into()))?),
        None => None,
    };
    let intent = spec
        .as_ref()
        .map(rls_suite::check::lint_intent)
        .unwrap_or_default();
    let baseline = args
        .baseline
        .as_deref()
        .map(rls_lint::Baseline::load)
        .transpose()
        .map_err(|e| InputError(e.into()))?;
    let opts = rls_lint::LintOptions {
        schemas: schemas_to_lint(args.schemas, spec.as_ref()),
        app_role,
        intent,
        baseline,
        ..Default::default()
    };
    let report = rls_lint::lint_url(&url, &opts).await?;
    if let Some(path) = &args.write_baseline {
        let baseline = rls_lint::Baseline::from_report(
            &report,
            "accepted when the baseline was written: say why",
        );
        baseline.write(path)?;
        eprintln!(
            "wrote the baseline {} ({} findings): replace each reason with why it is acceptable",
            path.display(),
            report.findings.len() + report.baselined.len()
        );
    }
    let text = if args.fix_sql {
        report.fix_sql()
    } else {
        match args.format {
            LintFormat::Json => format!("{}\n", report.render_json()),
            LintFormat::Text => report.render_text(),
            LintFormat::Sarif => {
                // The folder of --migrations, else the spec's `migrations` key.
                let dir = args
                    .migrations
                    .clone()
                    .or_else(|| spec.as_ref().and_then(|s| s.migrations.clone()));
                let locator = super::check::locator_for(dir.as_deref());
                rls_report::sarif_lint(&rls_report::LintInput::from(&report), &locator)
            }
            LintFormat::Markdown => {
                rls_report::markdown_lint(&rls_report::LintInput::from(&report))
            }
        }
    };
    write_or_print(&[Output {
        file: args.output.clone(),
        text,
    }])?;
    Ok(ExitCode::from(
        u8::try_from(report.exit_code(args.deny)).unwrap_or(1),
    ))
}

/// The schemas given with `--schema`, plus the spec's own schema (the one its tables live in,
/// which the API exposes) when it is not among them: `lint --spec` lints what the check checks.
fn schemas_to_lint(mut given: Vec<String>, spec: Option<&rls_suite::spec::Spec>) -> Vec<String> {
    if let Some(spec) = spec
        && !given.contains(&spec.schema)
    {
        given.push(spec.schema.clone());
    }
    given
}

pub(super) async fn verify(ctx: &Context, args: VerifyArgs) -> Result<ExitCode> {
    let state = ctx.state.load()?;
    let secret = match (args.jwt_secret.clone(), &state) {
        (Some(secret), _) => secret,
        (None, Some(state)) => state.jwt_secret.clone(),
        (None, None) => anyhow::bail!(
            "no JWT secret: pass --jwt-secret (the InsForge project's JWT_SECRET) or run `{} setup` first",
            ctx.program
        ),
    };
    // The spec given, else the one in the current folder (a team's repository); with neither,
    // the sample app's todos probe.
    let spec_path = args.spec.clone().or_else(|| super::find_spec(None).ok());
    if let Some(spec) = &spec_path {
        let admin = match (&args.database_url, &state) {
            (Some(url), _) => harness::PgTarget::parse(url)?,
            (None, Some(state)) => state.admin.clone(),
            (None, None) => anyhow::bail!(
                "verify --spec needs the endpoint's database to seed and observe its rows: pass \
                 --database-url (a superuser or the tables' owner) or run `{} setup` first",
                ctx.program
            ),
        };
        let endpoint = rls_suite::engine::HttpEndpoint {
            base_url: args.base_url.clone(),
            secret: clerk_token::Secret::new(secret)?,
        };
        let report = async {
            let spec = rls_suite::spec::Spec::load(spec)?;
            rls_suite::check::verify_spec(&spec, &admin, &endpoint).await
        };
        return match report.await {
            Ok(report) => {
                let (leaks, lost) = (report.leaks(), report.lost_access());
                let code: u8 = if !leaks.is_empty() {
                    1
                } else if !lost.is_empty() {
                    3
                } else {
                    0
                };
                match args.format {
                    Format::Json => println!("{:#}", report.to_json()),
                    Format::Text => {
                        println!("verify {} against {}", spec.display(), args.base_url);
                        println!();
                        print!("{}", report.render());
                        for l in &leaks {
                            println!("LEAK {l}");
                        }
                        for l in &lost {
                            println!("LOST {l}");
                        }
                        println!(
                            "{} leaks, {} lost access; the synthetic rows were removed",
                            leaks.len(),
                            lost.len()
                        );
                    }
                }
                Ok(ExitCode::from(code))
            }
            Err(e) => {
                eprintln!("error: verify could not run: {:#}", anyhow::Error::from(e));
                Ok(ExitCode::from(2))
            }
        };
    }
    let opts = rls_suite::todos::verify::VerifyOptions {
        base_url: args.base_url,
        secret: clerk_token::Secret::new(secret)?,
        table: args.table,
    };
    match rls_suite::todos::verify::verify(&opts).await {
        Ok(report) => {
            print!("{}", report.render());
            Ok(ExitCode::from(report.exit_code()))
        }
        // 1 means "leak": a run that could not happen says so with its own code.
        Err(e) => {
            eprintln!("error: verify could not run: {e}");
            Ok(ExitCode::from(2))
        }
    }
}

/// The sample app in this process, configured by its own flags (`args`), the environment,
/// then the settings setup recorded (in place of the workspace `.env` the app's own binary
/// reads). Serves until Ctrl-C or SIGTERM.
pub(super) async fn app_in_process(ctx: &Context, args: Vec<String>) -> Result<ExitCode> {
    use clap::Parser as _;
    let argv = std::iter::once(format!("{} app", ctx.program)).chain(args);
    let cli = match todo_app::Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return Ok(ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2)));
        }
    };
    let recorded: HashMap<String, String> = ctx
        .state
        .load()?
        .map(|s| s.env_lines().into_iter().collect())
        .unwrap_or_default();
    let config = match todo_app::AppConfig::from_layers(cli, &recorded) {
        Ok(config) => config,
        Err(e) => {
            eprintln!(
                "error: {e} (or run `{} setup`: the app serves the database it made)",
                ctx.program
            );
            return Ok(ExitCode::from(2));
        }
    };
    if config.bind.port() == 0 {
        println!(
            "insforge-rls app: serving on a free port of {} (INSFORGE_RLS_LOG=info names it; Ctrl-C stops it)",
            config.bind.ip()
        );
    } else {
        println!(
            "insforge-rls app: serving http://{}/ (Ctrl-C stops it)",
            config.bind
        );
    }
    match todo_app::run(config, todo_app::shutdown_signal()).await {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(todo_app::StartError::Config(e)) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(2))
        }
        Err(e) => Err(e).context("the sample app stopped with an error"),
    }
}
