//! Result files: `<name>.json` per benchmark, rendered into README.md (Markdown tables, plans
//! side by side) with the SVG plots it links. A hand-written notes block in an existing README
//! survives re-rendering.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::app::{self, AppThroughput};
use super::green::{self, TimeToGreen};
use super::meta::Meta;
use super::plot;
use super::reload::{self, SchemaReload};
use super::rls::{self, RlsAtScale};
use super::spec::{self, SpecCheck};
use super::stats::{Stats, Unit};
use super::{Skipped, Target};

const NOTES_BEGIN: &str = "<!-- notes:begin -->";
const NOTES_END: &str = "<!-- notes:end -->";
const NOTES_PLACEHOLDER: &str = "_No notes yet: write here what bounds a missed target (this block \
     is kept when the README is rendered again)._";

pub fn write_json<T: Serialize>(out: &Path, name: &str, value: &T) -> Result<PathBuf> {
    let path = out.join(format!("{name}.json"));
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

fn read_json<T: DeserializeOwned>(out: &Path, name: &str) -> Result<Option<T>> {
    let path = out.join(format!("{name}.json"));
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a result file of this version (delete it or run the benchmark again)",
                path.display()
            )
        })?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Whether `out` holds results of a full (not --quick) run.
pub fn has_full_results(out: &Path) -> bool {
    [green::NAME, rls::NAME, app::NAME, spec::NAME]
        .iter()
        .any(|name| {
            std::fs::read_to_string(out.join(format!("{name}.json")))
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .is_some_and(|v| v["meta"]["mode"] == "full")
        })
}

/// Renders README.md and the plots from every result file in `out`.
pub fn render(out: &Path) -> Result<Vec<PathBuf>> {
    let green: Option<TimeToGreen> = read_json(out, green::NAME)?;
    let rls: Option<RlsAtScale> = read_json(out, rls::NAME)?;
    let app: Option<AppThroughput> = read_json(out, app::NAME)?;
    let spec: Option<SpecCheck> = read_json(out, spec::NAME)?;
    let reload: Option<SchemaReload> = read_json(out, reload::NAME)?;
    if green.is_none() && rls.is_none() && app.is_none() && spec.is_none() && reload.is_none() {
        anyhow::bail!(
            "no result files in {} — run `cargo xtask bench` first",
            out.display()
        );
    }
    let mut written = Vec::new();
    if let Some(g) = &green {
        written.extend(plot::time_to_green(out, g)?);
    }
    if let Some(r) = &rls {
        written.push(plot::rls(out, r)?);
    }
    if let Some(a) = &app {
        written.push(plot::app(out, a)?);
    }

    let readme = out.join("README.md");
    let notes = std::fs::read_to_string(&readme)
        .ok()
        .and_then(|old| {
            let start = old.find(NOTES_BEGIN)? + NOTES_BEGIN.len();
            let end = old[start..].find(NOTES_END)? + start;
            Some(old[start..end].trim().to_owned())
        })
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| NOTES_PLACEHOLDER.to_owned());

    let metas: Vec<&Meta> = [
        green.as_ref().map(|g| &g.meta),
        rls.as_ref().map(|r| &r.meta),
        app.as_ref().map(|a| &a.meta),
        spec.as_ref().map(|s| &s.meta),
        reload.as_ref().map(|r| &r.meta),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut md = String::new();
    md.push_str("# Benchmarks\n\n");
    md.push_str(
        "<!-- Rendered by `cargo xtask bench` from the JSON files beside it; only the notes \
         block below is hand-written and kept when it is rendered again. -->\n\n",
    );
    if let Some(m) = metas.first() {
        let _ = writeln!(
            md,
            "Measured with `{}` ({} mode, {} build) on **{}**; {}, PostgreSQL {} ({} backend), \
             pgbench {}, crates {}{}. \n",
            m.command,
            m.mode,
            m.profile,
            m.machine.describe(),
            m.versions.rustc,
            m.versions.postgres,
            m.versions.backend,
            m.versions
                .pgbench
                .as_deref()
                .map_or("—", |v| v.trim_start_matches("pgbench ")),
            m.versions.crate_version,
            m.commit
                .as_deref()
                .map_or_else(String::new, |c| format!(", commit {c}"))
        );
    }
    md.push_str(
        "Every figure is a median over several runs or samples: `n` says how many, with the \
         p10–p90 range (samples) or min–max (medians of runs) beside it. Every target is \
         judged on a ratio or bound measured side by side in the same run, since the machine \
         (2 cores, shared with other builds) is noisy in absolute terms.\n\n",
    );

    md.push_str("## Targets\n\n| | target | goal | measured | note |\n|---|---|---|---|---|\n");
    let all_targets = green
        .iter()
        .flat_map(|g| g.targets.iter())
        .chain(rls.iter().flat_map(|r| r.targets.iter()))
        .chain(app.iter().flat_map(|a| a.targets.iter()))
        .chain(spec.iter().flat_map(|s| s.targets.iter()))
        .chain(reload.iter().flat_map(|r| r.targets.iter()));
    for t in all_targets {
        md.push_str(&target_row(t));
    }
    md.push('\n');

    if let Some(g) = &green {
        md.push_str(&green_md(g, true));
    }
    if let Some(r) = &rls {
        md.push_str(&rls_md(r, true));
    }
    if let Some(a) = &app {
        md.push_str(&app_md(a, true));
    }
    if let Some(s) = &spec {
        md.push_str("## Spec check\n\n");
        md.push_str(&spec::markdown(s));
        md.push('\n');
    }
    if let Some(r) = &reload {
        md.push_str(&reload::markdown(r));
        md.push('\n');
    }
    let _ = writeln!(
        md,
        "## What bounds the missed targets\n\n{NOTES_BEGIN}\n{notes}\n{NOTES_END}\n"
    );
    md.push_str(
        "## Reproduce\n\n```sh\ncargo xtask setup                       # the server measured \
         (its template, app role and JWT secret)\ncargo run --release -p bench             \
         # full: writes docs/benchmarks/ (`cargo xtask bench` re-runs itself in release)\n\
         cargo xtask bench --quick               # about 2 minutes: target/bench-quick/\n\
         cargo xtask bench --only rls,app        # some benchmarks; README from all JSON present\n\
         cargo xtask bench --render-only         # README.md and SVGs again from the JSON\n```\n",
    );
    std::fs::write(&readme, md).with_context(|| format!("cannot write {}", readme.display()))?;
    written.push(readme);
    Ok(written)
}

fn target_row(t: &Target) -> String {
    let mark = match t.met {
        Some(true) => "✅ met",
        Some(false) => "❌ missed",
        None => "— not measured",
    };
    format!(
        "| {mark} | {} | {} | {} | {} |\n",
        cell(&t.name),
        cell(&t.goal),
        cell(&t.measured),
        cell(&t.note)
    )
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn meta_line(m: &Meta) -> String {
    format!(
        "_Measured {} · {} mode · {} build · took {} · `{}`_\n\n",
        m.started_at,
        m.mode,
        m.profile,
        super::stats::eta(m.took_secs),
        m.command
    )
}

fn skipped_md(skipped: &[Skipped]) -> String {
    let mut md = String::new();
    for s in skipped {
        let _ = writeln!(md, "- **Skipped: {}** — {}", s.what, cell(&s.reason));
    }
    if !md.is_empty() {
        md.push('\n');
    }
    md
}

fn opt(s: Option<Stats>, unit: Unit) -> String {
    s.map_or_else(|| "—".into(), |s| s.show(unit))
}

pub fn green_md(g: &TimeToGreen, images: bool) -> String {
    let mut md = String::from("## 1. Time to green\n\n");
    md.push_str(&meta_line(&g.meta));
    md.push_str(
        "### setup and teardown\n\nOn a throwaway state folder (never the developer's setup), \
         one cycle per run: `setup` on empty state, `setup` again with the server running, \
         `teardown`.\n\n| backend | setup | setup again | teardown |\n|---|---|---|---|\n",
    );
    for s in &g.setup {
        let backend = match &s.image {
            Some(image) => format!("{} (warm image `{image}`)", s.backend),
            None => s.backend.clone(),
        };
        let _ = writeln!(
            md,
            "| {backend} | {} | {} | {} |",
            s.setup_secs.show(Unit::Secs),
            s.again_secs.show(Unit::Secs),
            s.teardown_secs.show(Unit::Secs)
        );
    }
    md.push('\n');
    md.push_str(&skipped_md(&g.skipped));
    if images && !g.setup.is_empty() {
        md.push_str("![setup and teardown](setup.svg)\n\n");
    }
    if let Some(c) = &g.clone {
        let limit = c.paths.iter().find(|p| p.key == c.limit_key);
        let _ = writeln!(
            md,
            "### Per-test database\n\nClones of a private copy of the migrated template \
             ({} MB); the paths are interleaved, their order rotated every round, after \
             one untimed round.\n\n| path | create | drop | create + drop | vs limit |\n|---|---|---|---|---|",
            c.template_mb
        );
        for p in &c.paths {
            let ratio = limit.map_or_else(
                || "—".into(),
                |l| Unit::Ratio.fmt(p.total_ms.median / l.total_ms.median),
            );
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {ratio} |",
                cell(&p.label),
                p.create_ms.show(Unit::Ms),
                p.drop_ms.show(Unit::Ms),
                p.total_ms.show(Unit::Ms)
            );
        }
        let harness = c.paths.iter().find(|p| p.key == c.harness_key);
        if let Some(bg) = harness.and_then(|h| h.background_drop_ms) {
            let _ = writeln!(
                md,
                "\nThe harness's drop column is what `Drop` blocks for (queueing); the forced \
                 `DROP DATABASE` itself then runs on the factory's connection while the next test \
                 goes on: {}. \"vs limit\" compares what a test waits for with the limit: the \
                 bare path doing the same work (same strategy{}, same tablespace) on one open \
                 connection.",
                bg.show(Unit::Ms),
                c.harness_strategy
                    .as_deref()
                    .map_or_else(String::new, |s| format!(" ({s})"))
            );
        }
        if let Some(connect) = c.connect_ms {
            let _ = writeln!(
                md,
                "\nOpening and closing one superuser connection (SCRAM-SHA-256 over TCP), which \
                 the per-connection path does twice per test database: {}.",
                connect.show(Unit::Ms)
            );
        }
        let _ = writeln!(md, "\nPeer figure: {}.\n", g.peer);
        if images {
            md.push_str("![per-test database](per_test_database.svg)\n\n");
        }
    }
    md.push_str("### Full suite\n\n");
    match &g.suite {
        Some(s) => {
            let _ = writeln!(
                md,
                "| command | warm-up build (untimed) | wall time | tests |\n|---|---|---|---|\n\
                 | `{}` | {} | {} | {} passed, {} failed, {} ignored{} |\n\nLog of the last run: `{}`.\n",
                s.command,
                Unit::Secs.fmt(s.build_secs),
                s.wall_secs.show(Unit::Secs),
                s.passed,
                s.failed,
                s.ignored,
                if s.failed_runs > 0 {
                    format!(" ({} runs failed)", s.failed_runs)
                } else {
                    String::new()
                },
                s.log
            );
        }
        None => md.push_str("Not measured in this run (see *Skipped* above).\n\n"),
    }
    md
}

pub fn rls_md(r: &RlsAtScale, full: bool) -> String {
    let d = &r.dataset;
    let mut md = String::from("## 2. RLS cost at scale\n\n");
    md.push_str(&meta_line(&r.meta));
    let _ = writeln!(
        md,
        "A database of its own (cloned from the template, dropped afterwards): **{} todos over \
         {} Clerk user ids** (`{}`, ~{} rows each, {:.0}% open), table {} MB + indexes {} MB, \
         loaded in {} (generate_series, index built after). Each run samples {} different users \
         at random (after 10 untimed); each user's rows are first read once through every variant, \
         untimed, with the answers checked to agree (the tables together exceed \
         `shared_buffers`, so the first variant to touch a user would otherwise pay for the \
         others), then the six timed queries run in an order rotated per user. {} runs. \
         Latency is the statement as the client sees it (prepared, loopback).\n",
        thousands(d.todos),
        thousands(d.users),
        d.user_id_example,
        d.todos / d.users.max(1),
        d.open_share * 100.0,
        d.table_mb,
        d.index_mb,
        Unit::Secs.fmt(d.load_secs),
        r.users_per_run,
        r.runs
    );
    md.push_str(
        "- **RLS** — the real path: the app role in a transaction with \
         `set_config('role','authenticated',true)` and the claims (with `sub`), then the query \
         with no user in it; the project's policy filters:\n",
    );
    let _ = writeln!(md, "  `{}`", r.project_policy);
    md.push_str(
        "- **limit** — the same query with an explicit `WHERE user_id = $1`, as a superuser \
         (RLS bypassed), same table and index.\n",
    );
    let _ = writeln!(
        md,
        "- **naive** — the same rows in `todos_naive` with no index on `user_id` and the \
         unwrapped policy (bounded: few users, a time budget, a statement timeout):\n  `{}`\n",
        r.naive_policy
    );
    let _ = writeln!(
        md,
        "- **V2 form** (diagnostic) — the project's policy on `todos_v2` (same rows, same \
         index) calling the function as migration V2 wrote it, with `SET search_path = ''`, \
         which Postgres cannot inline (V4 replaced it):\n  `{}`\n",
        r.v2_function
    );
    md.push_str(
        "| query | RLS (real path) | limit | RLS ÷ limit (per run) | V2 form | V2 form ÷ limit | naive | naive ÷ limit |\n|---|---|---|---|---|---|---|---|\n",
    );
    for q in &r.queries {
        let v = |k: &str| q.variants.iter().find(|v| v.key == k);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            q.title,
            opt(v("rls").and_then(|v| v.latency_ms), Unit::Ms),
            opt(v("limit").and_then(|v| v.latency_ms), Unit::Ms),
            q.ratio_rls.show_range(Unit::Ratio),
            opt(v("v2").and_then(|v| v.latency_ms), Unit::Ms),
            q.ratio_v2
                .map_or_else(|| "—".into(), |s| s.show_range(Unit::Ratio)),
            opt(v("naive").and_then(|v| v.latency_ms), Unit::Ms),
            q.ratio_naive
                .map_or_else(|| "—".into(), |s| format!("{:.0}×", s.median))
        );
    }
    let _ = writeln!(
        md,
        "\nThe whole identity transaction around the RLS list query, opened as the app opens it \
         (BEGIN READ ONLY and set_config in one round trip, the query, ROLLBACK — three round \
         trips) takes {}.\n",
        r.identity_tx_ms.show(Unit::Ms)
    );
    for n in &r.notes {
        let _ = writeln!(md, "- {}", cell(n));
    }
    if !r.notes.is_empty() {
        md.push('\n');
    }
    if !full {
        return md;
    }
    md.push_str("![RLS latency](rls_latency.svg)\n\n");
    md.push_str(
        "### Plans\n\n`EXPLAIN (ANALYZE, BUFFERS)` for one user, after the timed runs and one untimed read of \
         that user's rows through every variant.\n\n",
    );
    for q in &r.queries {
        let _ = writeln!(md, "**{}**\n\n<table>\n<tr>", q.title);
        for v in &q.variants {
            let _ = writeln!(md, "<th>{}</th>", html(&v.label));
        }
        md.push_str("</tr>\n<tr>\n");
        for v in &q.variants {
            let _ = writeln!(
                md,
                "<td valign=\"top\"><pre>{}\n\n{}</pre></td>",
                html(&v.sql),
                html(&v.plan)
            );
        }
        md.push_str("</tr>\n</table>\n\n");
    }
    md
}

pub fn app_md(a: &AppThroughput, full: bool) -> String {
    let mut md = String::from("## 3. App throughput\n\n");
    md.push_str(&meta_line(&a.meta));
    let _ = writeln!(
        md,
        "The sample app spawned in-process (`todo_app::spawn`, pool size = concurrent users) on \
         the {}-todo database, driven by a bounded keep-alive client inside the xtask (hyper's \
         connection-level client, one HTTP/1.1 connection per user); each concurrent user acts \
         as a random one of its own {} ÷ C Clerk ids, with a token \
         minted from the setup's JWT secret. pgbench runs the app's own transaction — the \
         identity switch and the exact SQL the app generates — as the app role on the same \
         database at the same concurrency. Each side: {} s warm-up, then {} s timed; {} runs, \
         sides alternating which goes first; the figures are medians of the runs.\n",
        thousands(a.dataset.todos),
        a.user_pool,
        a.warmup_secs,
        a.duration_secs,
        a.runs
    );
    for req in &a.app_requests {
        let _ = writeln!(md, "- app: `{req}`");
    }
    if let Some(cmd) = &a.pgbench_command {
        let _ = writeln!(md, "- pgbench: `{cmd}`");
    }
    md.push('\n');
    md.push_str(
        "| workload | users | app req/s | app p50 / p99 | pgbench tx/s | pgbench p50 / p99 | app ÷ pgbench |\n|---|---|---|---|---|---|---|\n",
    );
    for row in &a.rows {
        let lat = |s: &super::app::Side| {
            format!(
                "{} / {}",
                Unit::Ms.fmt(s.p50_ms.median),
                Unit::Ms.fmt(s.p99_ms.median)
            )
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} |",
            if row.workload == "mix" {
                "90/10 list/insert"
            } else {
                "list"
            },
            row.users,
            row.app.rps.show_range(Unit::PerSec),
            lat(&row.app),
            row.pgbench
                .as_ref()
                .map_or_else(|| "—".into(), |p| p.rps.show_range(Unit::PerSec)),
            row.pgbench.as_ref().map_or_else(|| "—".into(), lat),
            row.ratio
                .map_or_else(|| "—".into(), |r| r.show_range(Unit::Ratio))
        );
    }
    md.push('\n');
    if a.rows.iter().any(|r| r.app.cpu_client_us.is_some()) {
        md.push_str(
            "CPU time per request, whole run (warm-up included), median of runs — where the \
             2 cores go. App side: the app (the xtask process less the load generator's \
             thread), the load generator, and the server's postgres processes; pgbench side: \
             the pgbench process and the same postgres processes (local backend only):\n\n\
             | workload | users | app | load generator | postgres (app) | app side total | pgbench | postgres (pgbench) | pgbench side total |\n|---|---|---|---|---|---|---|---|---|\n",
        );
        let med = |s: Option<Stats>| s.map(|s| s.median);
        let us = |v: Option<f64>| v.map_or_else(|| "—".into(), |v| format!("{v:.0} µs"));
        for row in &a.rows {
            let client = med(row.app.cpu_client_us);
            let loadgen = med(row.app.cpu_loadgen_us);
            let server = client.zip(loadgen).map(|(c, l)| c - l);
            let pg_app = med(row.app.cpu_postgres_us);
            let bench = row.pgbench.as_ref().and_then(|p| med(p.cpu_client_us));
            let pg_bench = row.pgbench.as_ref().and_then(|p| med(p.cpu_postgres_us));
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | **{}** | {} | {} | **{}** |",
                row.workload,
                row.users,
                us(server),
                us(loadgen),
                us(pg_app),
                us(client.zip(pg_app).map(|(c, p)| c + p)),
                us(bench),
                us(pg_bench),
                us(bench.zip(pg_bench).map(|(c, p)| c + p)),
            );
        }
        md.push('\n');
    }
    md.push_str(&skipped_md(&a.skipped));
    for n in &a.notes {
        let _ = writeln!(md, "- {}", cell(n));
    }
    if !a.notes.is_empty() {
        md.push('\n');
    }
    if !full {
        return md;
    }
    md.push_str("![app throughput](app_throughput.svg)\n\n");
    for s in &a.pgbench_scripts {
        let _ = writeln!(
            md,
            "<details><summary>pgbench script: {}</summary>\n\n```\n{}```\n\n</details>\n",
            s.workload, s.text
        );
    }
    md
}

fn html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn print_targets(targets: &[Target]) {
    for t in targets {
        let mark = match t.met {
            Some(true) => "met   ",
            Some(false) => "MISSED",
            None => "n/a   ",
        };
        println!("  [{mark}] {} — goal {}: {}", t.name, t.goal, t.measured);
    }
    println!();
}

pub fn print_spec(s: &SpecCheck) {
    println!("\n{}", spec::markdown(s));
    print_targets(&s.targets);
}

pub fn print_green(g: &TimeToGreen) {
    println!("\n{}", green_md(g, false));
    print_targets(&g.targets);
}

pub fn print_rls(r: &RlsAtScale) {
    println!("\n{}", rls_md(r, false));
    print_targets(&r.targets);
}

pub fn print_app(a: &AppThroughput) {
    println!("\n{}", app_md(a, false));
    print_targets(&a.targets);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_thousands_and_escapes() {
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(html("a<b & c>"), "a&lt;b &amp; c&gt;");
        assert_eq!(cell("a|b\nc"), "a\\|b c");
    }
}
