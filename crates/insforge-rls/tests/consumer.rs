//! The installed command as a team runs it: in a repository of its own holding nothing but a
//! `migrations/` folder and a spec, with no setup beforehand. `insforge-rls check` starts the
//! server it needs (an ephemeral one under `./.insforge-rls`), exits 0 on the example and 1 on
//! a hand-broken copy, writes nothing into the migrations, and leaves nothing running.

#![allow(clippy::unwrap_used)] // Test helpers: a panic is the failure report.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The example this workspace ships (test data; the command itself never reads the workspace).
fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/team-workspaces")
        .canonicalize()
        .unwrap()
}

/// A temporary git repository with the example's `migrations/` and `access.toml`, and nothing
/// else. Readable by others: the local backend runs Postgres as the `postgres` user, which must
/// reach the state folder inside it.
fn consumer_repo() -> tempfile::TempDir {
    let repo = tempfile::tempdir().unwrap();
    fs::set_permissions(
        repo.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let git = Command::new("git")
        .args(["init", "--quiet"])
        .current_dir(repo.path())
        .status();
    assert!(git.is_ok_and(|s| s.success()), "git init failed");
    fs::create_dir(repo.path().join("migrations")).unwrap();
    for entry in fs::read_dir(example().join("migrations")).unwrap() {
        let entry = entry.unwrap();
        fs::copy(
            entry.path(),
            repo.path().join("migrations").join(entry.file_name()),
        )
        .unwrap();
    }
    fs::copy(
        example().join("access.toml"),
        repo.path().join("access.toml"),
    )
    .unwrap();
    repo
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// `insforge-rls ARGS` in `dir`, as a user runs it: none of cargo's or this workspace's
/// settings (no CARGO_MANIFEST_DIR to find the workspace by, no nextest run to share).
fn insforge_rls(dir: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_insforge-rls"))
        .args(args)
        .current_dir(dir)
        .env_remove("CARGO_MANIFEST_DIR")
        .env_remove("NEXTEST_RUN_ID")
        .env_remove("INSFORGE_RLS_STATE_DIR")
        .env_remove("INSFORGE_RLS_MIGRATIONS")
        .env_remove("INSFORGE_RLS_DATABASE_URL")
        .output()
        .unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Every file of `dir` with its contents, to show nothing was written there.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let bytes = fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect();
    files.sort();
    files
}

/// Processes whose command line names `dir` (a server, a guardian).
fn processes_in(dir: &Path) -> Vec<String> {
    let needle = dir.display().to_string();
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            e.file_name().to_str()?.parse::<u32>().ok()?;
            let cmdline = fs::read(e.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline.contains(&needle).then_some(cmdline)
        })
        .collect()
}

/// Waits (bounded) until the ephemeral server's cleanup is done: no process names the
/// repository and `.insforge-rls` holds nothing.
fn assert_nothing_left(repo: &Path) {
    let state = repo.join(".insforge-rls");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left: Vec<_> = fs::read_dir(&state)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        let running = processes_in(repo);
        if left.is_empty() && running.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "left behind: {left:?}, running: {running:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A server the command can start: the PostgreSQL binaries, or a Docker engine.
fn can_start_a_server() -> bool {
    let local = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .is_ok_and(|o| o.status.success());
    local || Path::new("/var/run/docker.sock").exists()
}

#[test]
fn check_in_a_consumer_repository_is_clean_and_a_hand_broken_copy_leaks() {
    if !can_start_a_server() {
        eprintln!("skipped: neither PostgreSQL binaries nor a Docker engine on this machine");
        return;
    }
    let repo = consumer_repo();
    let before = snapshot(&repo.path().join("migrations"));
    let r = insforge_rls(repo.path(), &["check"]);
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .starts_with("insforge-rls check: access.toml (4 tables,"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("0 leaks, 0 lost access — clean"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("mutation score: 100%"), "{}", r.stdout);
    assert_eq!(snapshot(&repo.path().join("migrations")), before);
    assert_nothing_left(repo.path());

    // The same matrices over HTTP, with the hostile-token table and the pool-bleed run: nothing
    // of them may be read from this workspace (the token table is built into the binary).
    let r = insforge_rls(repo.path(), &["check", "--http", "--no-mutants"]);
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("huge token (1 MB)"), "{}", r.stdout);
    assert_nothing_left(repo.path());

    let broken = consumer_repo();
    let migration = broken.path().join("migrations/V1__workspaces.sql");
    let sql = fs::read_to_string(&migration).unwrap();
    let hand_broken = sql.replace(
        "using (public.project_role(project_id) = 'owner');",
        "using (public.project_role(project_id) is not null);",
    );
    assert_ne!(
        sql, hand_broken,
        "the example's owner-only delete policy moved"
    );
    fs::write(&migration, hand_broken).unwrap();
    // As the GitHub Action runs it: the markdown to a file, SARIF and JUnit beside it.
    let r = insforge_rls(
        broken.path(),
        &[
            "check",
            "--no-mutants",
            "--format",
            "markdown",
            "--output",
            "reports/check.md",
            "--junit",
            "reports/check.xml",
            "--sarif",
            "reports/check.sarif",
        ],
    );
    assert_eq!(r.code, Some(1), "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.stdout, "", "every report went to its file");
    assert_nothing_left(broken.path());

    // SARIF and JUnit: the leak at the hand-broken policy's line, and valid.
    let line = line_of(&migration, "create policy tasks_delete");
    let sarif = fs::read_to_string(broken.path().join("reports/check.sarif")).unwrap();
    let log: serde_json::Value = serde_json::from_str(&sarif).unwrap();
    assert_valid_sarif(&log);
    let results = log["runs"][0]["results"].as_array().unwrap();
    let delete = results
        .iter()
        .find(|r| {
            r["ruleId"] == "check.leak"
                && r["message"]["text"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("[tasks] delete"))
        })
        .unwrap_or_else(|| panic!("no delete leak on tasks: {log:#}"));
    let at = &delete["locations"][0]["physicalLocation"];
    assert_eq!(
        at["artifactLocation"]["uri"], "migrations/V1__workspaces.sql",
        "{delete:#}"
    );
    assert_eq!(at["region"]["startLine"], line, "{delete:#}");
    let junit = fs::read_to_string(broken.path().join("reports/check.xml")).unwrap();
    assert!(junit.contains("<failure type=\"leak\""), "{junit}");
    assert!(
        junit.contains("<testcase classname=\"tasks\" name=\"delete · "),
        "{junit}"
    );
    assert_valid_junit(&junit);
    let md = fs::read_to_string(broken.path().join("reports/check.md")).unwrap();
    assert!(md.starts_with("## insforge-rls check: FAILED — "), "{md}");
    assert!(md.contains("tasks") && md.contains("delete"), "{md}");
}

/// The 1-based line of the first line of `path` that contains `needle`.
fn line_of(path: &Path, needle: &str) -> u64 {
    let text = fs::read_to_string(path).unwrap();
    let i = text
        .lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in {}", path.display()));
    i as u64 + 1
}

/// rls-report's vendored schemas (test data).
fn schemas() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../rls-report/tests/schemas")
}

/// Asserts `log` validates against the SARIF 2.1.0 schema.
fn assert_valid_sarif(log: &serde_json::Value) {
    let text = fs::read_to_string(schemas().join("sarif-schema-2.1.0.json")).unwrap();
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(log)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "the SARIF does not validate:\n{}",
        errors.join("\n")
    );
}

/// Asserts `xml` validates against junit-10.xsd with xmllint, or says it was skipped.
fn assert_valid_junit(xml: &str) {
    let has_xmllint = Command::new("xmllint")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_xmllint {
        eprintln!(
            "SKIPPED the JUnit schema check: xmllint is not installed (Debian: apt-get install libxml2-utils)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("check.xml");
    fs::write(&file, xml).unwrap();
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(schemas().join("junit-10.xsd"))
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the JUnit does not validate against junit-10.xsd:\n{}\n{xml}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn no_spec_exits_2_naming_where_it_looked() {
    let empty = tempfile::tempdir().unwrap();
    let r = insforge_rls(
        empty.path(),
        &["check", "--format", "sarif", "--output", "check.sarif"],
    );
    assert_eq!(r.code, Some(2), "{}\n{}", r.stdout, r.stderr);
    let cwd = empty.path().canonicalize().unwrap();
    for looked in ["insforge-rls.toml", "access.toml"] {
        assert!(
            r.stderr.contains(&cwd.join(looked).display().to_string()),
            "{}",
            r.stderr
        );
    }
    assert!(!empty.path().join(".insforge-rls").exists());
    assert!(
        !empty.path().join("check.sarif").exists(),
        "a check that did not run writes no report"
    );
}

#[test]
fn a_migration_that_cannot_be_read_exits_2_naming_it() {
    let repo = consumer_repo();
    let dangling = repo.path().join("migrations/V2__later.sql");
    std::os::unix::fs::symlink(repo.path().join("nowhere.sql"), &dangling).unwrap();
    let r = insforge_rls(repo.path(), &["check"]);
    assert_eq!(r.code, Some(2), "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("V2__later.sql"), "{}", r.stderr);
    assert!(!repo.path().join(".insforge-rls").exists());
}

#[test]
fn an_unknown_format_exits_2_listing_the_formats() {
    let repo = consumer_repo();
    let r = insforge_rls(repo.path(), &["check", "--format", "xml"]);
    assert_eq!(r.code, Some(2), "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("[possible values: text, json, junit, sarif, markdown]"),
        "{}",
        r.stderr
    );
}

#[test]
fn every_command_has_help_with_an_example() {
    let dir = tempfile::tempdir().unwrap();
    for command in [
        "setup", "teardown", "status", "migrate", "token", "lint", "check", "verify", "app",
    ] {
        let r = insforge_rls(dir.path(), &[command, "--help"]);
        assert_eq!(r.code, Some(0), "{command}: {}", r.stderr);
        assert!(
            r.stdout.contains("Example") && r.stdout.contains(&format!("insforge-rls {command}")),
            "{command}: {}",
            r.stdout
        );
    }
}

/// Tears down what `insforge-rls setup` made in a repository, even when the test fails.
struct SetUp<'a>(&'a Path);

impl Drop for SetUp<'_> {
    fn drop(&mut self) {
        let r = insforge_rls(self.0, &["teardown"]);
        if r.code != Some(0) {
            eprintln!("teardown failed: {}\n{}", r.stdout, r.stderr);
        }
    }
}

#[test]
fn lint_writes_sarif_at_the_migration_line_and_a_baseline_quiets_what_it_lists() {
    if !can_start_a_server() {
        eprintln!("skipped: neither PostgreSQL binaries nor a Docker engine on this machine");
        return;
    }
    let repo = consumer_repo();
    let broken = repo
        .path()
        .join("migrations/V2__everyone_deletes_tasks.sql");
    fs::write(
        &broken,
        "-- Hand-broken: every signed-in user deletes every task.\n\
         drop policy tasks_delete on public.tasks;\n\n\
         create policy tasks_delete on public.tasks for delete to authenticated\n  using (true);\n",
    )
    .unwrap();
    let r = insforge_rls(repo.path(), &["setup", "--backend", "local"]);
    let teardown = SetUp(repo.path());
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("  server      cluster "), "{}", r.stdout);
    // status says where the server is through the backend's own description.
    let r = insforge_rls(repo.path(), &["status"]);
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("backend     local\nlocation    cluster "),
        "{}",
        r.stdout
    );

    let r = insforge_rls(
        repo.path(),
        &["lint", "--format", "sarif", "--output", "lint.sarif"],
    );
    assert_eq!(r.code, Some(1), "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.stdout, "", "the report went to the file");
    let log: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(repo.path().join("lint.sarif")).unwrap()).unwrap();
    assert_valid_sarif(&log);
    let finding = log["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| {
            r["ruleId"] == "policy.always_true"
                && r["message"]["text"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("policy tasks_delete on public.tasks"))
        })
        .cloned()
        .unwrap_or_else(|| panic!("no policy.always_true on tasks_delete: {log:#}"));
    let at = &finding["locations"][0]["physicalLocation"];
    assert_eq!(
        at["artifactLocation"]["uri"],
        "migrations/V2__everyone_deletes_tasks.sql"
    );
    assert_eq!(
        at["region"]["startLine"],
        line_of(&broken, "create policy tasks_delete")
    );

    let r = insforge_rls(repo.path(), &["lint", "--format", "markdown"]);
    assert_eq!(r.code, Some(1), "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.starts_with("## insforge-rls lint: "),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("policy.always_true"), "{}", r.stdout);

    let r = insforge_rls(repo.path(), &["lint", "--fix-sql"]);
    assert!(
        r.stdout.starts_with("-- rls-lint --fix-sql: ") && r.stdout.contains("tasks_delete"),
        "{}\n{}",
        r.stdout,
        r.stderr
    );

    let r = insforge_rls(repo.path(), &["lint", "--write-baseline", "baseline.toml"]);
    assert_eq!(r.code, Some(1), "{}\n{}", r.stdout, r.stderr);
    let baseline = fs::read_to_string(repo.path().join("baseline.toml")).unwrap();
    assert!(
        baseline.contains("rule = \"policy.always_true\""),
        "{baseline}"
    );
    let r = insforge_rls(repo.path(), &["lint", "--baseline", "baseline.toml"]);
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    let r = insforge_rls(repo.path(), &["lint", "--baseline", "missing.toml"]);
    assert_eq!(r.code, Some(2), "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("missing.toml"), "{}", r.stderr);
    drop(teardown);
    assert_nothing_left(repo.path());
}
