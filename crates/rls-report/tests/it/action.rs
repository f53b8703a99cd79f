//! The action's script (action/run.sh) run as GitHub would run its steps: GitHub's variables
//! set to files of a temporary folder, and a stand-in `insforge-rls` on PATH that logs how it
//! was called, writes a known report for each format and exits with the status it is told to.

use std::path::PathBuf;
use std::process::{Command, Output};

use crate::util::root;

const STUB: &str = r#"#!/usr/bin/env bash
printf '%s | %s | backend=%s\n' "$PWD" "$*" "${INSFORGE_RLS_BACKEND:-}" >>"$STUB_LOG"
[[ $1 == check ]] || exit 0
write() { # format file
	case $1 in
	sarif) echo '{"version":"2.1.0","runs":[]}' >"$2" ;;
	junit) echo '<testsuites/>' >"$2" ;;
	markdown) printf '## insforge-rls check: STUB %s\n' "$STUB_EXIT" >"$2" ;;
	esac
}
[[ $STUB_EXIT == 0 || $STUB_EXIT == 1 || $STUB_EXIT == 3 || $STUB_EXIT == 4 ]] || exit "$STUB_EXIT"
format= output=
while (($#)); do
	case $1 in
	--format) format=$2; shift ;;
	--output) output=$2; shift ;;
	--sarif | --junit | --markdown) write "${1#--}" "$2"; shift ;;
	esac
	shift
done
write "$format" "$output"
exit "$STUB_EXIT"
"#;

struct Runner {
    dir: tempfile::TempDir,
}

impl Runner {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["bin", "workspace", "temp"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        let stub = dir.path().join("bin/insforge-rls");
        std::fs::write(&stub, STUB).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `run.sh <step>` with GitHub's variables, the stub first on PATH, and `env`.
    fn step(&self, step: &str, env: &[(&str, &str)]) -> Output {
        let path = format!(
            "{}:{}",
            self.path("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = Command::new("bash");
        cmd.arg(root().join("action/run.sh"))
            .arg(step)
            .env_clear()
            .env("PATH", path)
            .env("HOME", self.dir.path())
            .env("GITHUB_STEP_SUMMARY", self.path("summary.md"))
            .env("GITHUB_OUTPUT", self.path("output"))
            .env("GITHUB_PATH", self.path("path"))
            .env("GITHUB_WORKSPACE", self.path("workspace"))
            .env("GITHUB_ACTION_PATH", root())
            .env("RUNNER_TEMP", self.path("temp"))
            .env("RUNNER_OS", "Linux")
            .env("RUNNER_ARCH", "X64")
            .env("STUB_LOG", self.path("stub.log"))
            .env("STUB_EXIT", "0");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    /// `name=value` lines written to GITHUB_OUTPUT.
    fn output(&self, name: &str) -> Option<String> {
        self.read("output")
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")).map(str::to_owned))
    }
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn show(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn check_inputs(exit: &str) -> Vec<(&str, &str)> {
    vec![
        ("STUB_EXIT", exit),
        ("INPUT_SPEC", "access.toml"),
        ("INPUT_MIGRATIONS", "db/migrations"),
        ("INPUT_POSTGRES_VERSION", "16"),
    ]
}

#[test]
fn leaks_write_every_report_and_the_summary_then_fail_the_verdict() {
    let r = Runner::new();
    let o = r.step("check", &check_inputs("1"));
    assert_eq!(
        code(&o),
        0,
        "the check step itself passes so SARIF is uploaded: {}",
        show(&o)
    );
    let temp = r.path("temp").join("insforge-rls");
    let expect = |name: &str| Some(temp.join(name).display().to_string());
    assert_eq!(r.output("sarif"), expect("check.sarif"));
    assert_eq!(r.output("junit"), expect("check.xml"));
    assert_eq!(r.output("markdown"), expect("check.md"));
    assert_eq!(r.output("exit-code").as_deref(), Some("1"));
    assert_eq!(r.read("summary.md"), "## insforge-rls check: STUB 1\n");
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .contains("::error title=insforge-rls::the check found leaks"),
        "{}",
        show(&o)
    );
    let workspace = r.path("workspace").display().to_string();
    let log = r.read("stub.log");
    let calls: Vec<&str> = log.lines().collect();
    // One run writes all three reports.
    assert_eq!(
        calls,
        [format!(
            "{workspace} | check --spec access.toml --migrations db/migrations --format markdown --output {} --sarif {} --junit {} | backend=local",
            temp.join("check.md").display(),
            temp.join("check.sarif").display(),
            temp.join("check.xml").display()
        )],
        "{log}"
    );
    assert_eq!(r.read("temp/insforge-rls/check.xml"), "<testsuites/>\n");

    let fail = r.step("verdict", &[("CHECK_EXIT_CODE", "1")]);
    assert_eq!(code(&fail), 1, "{}", show(&fail));
    let allowed = r.step(
        "verdict",
        &[
            ("CHECK_EXIT_CODE", "1"),
            ("INPUT_FAIL_ON_FINDINGS", "false"),
        ],
    );
    assert_eq!(code(&allowed), 0, "{}", show(&allowed));
}

#[test]
fn lost_access_alone_exits_3_and_is_a_finding_too() {
    let r = Runner::new();
    let o = r.step("check", &check_inputs("3"));
    assert_eq!(code(&o), 0, "{}", show(&o));
    assert_eq!(r.output("exit-code").as_deref(), Some("3"));
    assert!(r.output("sarif").is_some(), "the SARIF is uploaded");
    assert_eq!(r.read("stub.log").lines().count(), 1);
    let v = r.step("verdict", &[("CHECK_EXIT_CODE", "3")]);
    assert_eq!(code(&v), 3, "{}", show(&v));
}

#[test]
fn an_untested_policy_alone_exits_4_and_is_a_finding_too() {
    let r = Runner::new();
    let o = r.step("check", &check_inputs("4"));
    assert_eq!(code(&o), 0, "{}", show(&o));
    assert_eq!(r.output("exit-code").as_deref(), Some("4"));
    assert!(r.output("sarif").is_some(), "the SARIF is uploaded");
    let v = r.step("verdict", &[("CHECK_EXIT_CODE", "4")]);
    assert_eq!(code(&v), 4, "{}", show(&v));
}

#[test]
fn the_check_runs_in_the_working_directory_under_the_workspace() {
    let r = Runner::new();
    std::fs::create_dir(r.path("workspace/app")).unwrap();
    let mut env = check_inputs("0");
    env.push(("INPUT_WORKING_DIRECTORY", "app"));
    let o = r.step("check", &env);
    assert_eq!(code(&o), 0, "{}", show(&o));
    let app = r.path("workspace/app").display().to_string();
    let log = r.read("stub.log");
    assert!(
        log.lines().all(|l| l.starts_with(&format!("{app} | "))),
        "{log}"
    );

    env.pop();
    env.push(("INPUT_WORKING_DIRECTORY", "missing"));
    let o = r.step("check", &env);
    assert_eq!(code(&o), 2, "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("working-directory missing does not exist"),
        "{}",
        show(&o)
    );
}

#[test]
fn a_clean_check_passes_every_step() {
    let r = Runner::new();
    let o = r.step("check", &check_inputs("0"));
    assert_eq!(code(&o), 0, "{}", show(&o));
    assert_eq!(r.output("exit-code").as_deref(), Some("0"));
    assert_eq!(r.read("summary.md"), "## insforge-rls check: STUB 0\n");
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("::error"),
        "{}",
        show(&o)
    );
    let v = r.step("verdict", &[("CHECK_EXIT_CODE", "0")]);
    assert_eq!(code(&v), 0, "{}", show(&v));
}

#[test]
fn a_check_that_cannot_run_fails_its_step_and_says_so_in_the_summary() {
    let r = Runner::new();
    let o = r.step("check", &check_inputs("2"));
    assert_eq!(code(&o), 2, "{}", show(&o));
    assert_eq!(r.output("exit-code").as_deref(), Some("2"));
    assert_eq!(r.output("sarif"), None, "no report to upload");
    assert!(
        r.read("summary.md")
            .starts_with("## insforge-rls check could not run\n"),
        "{}",
        r.read("summary.md")
    );
    assert_eq!(r.read("stub.log").lines().count(), 1, "the check ran once");
}

#[test]
fn a_service_container_is_set_up_used_and_torn_down_with_its_url_masked() {
    let r = Runner::new();
    let url = "postgres://postgres:secret@localhost:5432/postgres";
    let mut env = check_inputs("0");
    env.push(("INPUT_DATABASE_URL", url));
    let o = r.step("check", &env);
    assert_eq!(code(&o), 0, "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&format!("::add-mask::{url}")),
        "{}",
        show(&o)
    );
    let log = r.read("stub.log");
    let commands: Vec<&str> = log
        .lines()
        .map(|l| {
            l.split(" | ")
                .nth(1)
                .unwrap_or_default()
                .split(' ')
                .next()
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(commands, ["setup", "check", "teardown"], "{log}");
    assert!(log.lines().all(|l| l.ends_with("backend=url")), "{log}");
    assert!(
        !log.contains("secret"),
        "the URL reached the command line: {log}"
    );
    // The postgres step does nothing with a url.
    let p = r.step("postgres", &[("INPUT_DATABASE_URL", url)]);
    assert_eq!(code(&p), 0, "{}", show(&p));
}

#[test]
fn the_postgres_step_finds_installed_binaries() {
    // Only where PostgreSQL 15 is installed: the step must not try to install anything then.
    if !std::path::Path::new("/usr/lib/postgresql/15/bin/initdb").is_file() {
        crate::util::skip(
            "the_postgres_step_finds_installed_binaries",
            "no /usr/lib/postgresql/15/bin/initdb on this machine",
        );
        return;
    }
    let r = Runner::new();
    let o = r.step("postgres", &[("INPUT_POSTGRES_VERSION", "15")]);
    assert_eq!(code(&o), 0, "{}", show(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("PostgreSQL 15 binaries in /usr/lib/postgresql/15/bin"),
        "{}",
        show(&o)
    );
    assert!(!stdout.contains("installing"), "{}", show(&o));
}

#[test]
fn resolve_keys_the_cache_by_version_and_puts_the_tool_on_path() {
    let r = Runner::new();
    let sha = "0123456789abcdef0123456789abcdef01234567";
    let o = r.step(
        "resolve",
        &[
            ("INPUT_VERSION", sha),
            ("INPUT_REPOSITORY", "https://git.invalid/insforge-rls"),
        ],
    );
    assert_eq!(code(&o), 0, "{}", show(&o));
    let tool_root = r.path("temp").join("insforge-rls-tool");
    assert_eq!(
        r.output("key"),
        Some(format!("insforge-rls-Linux-X64-{sha}"))
    );
    assert_eq!(r.output("root"), Some(tool_root.display().to_string()));
    assert_eq!(
        r.read("path"),
        format!("{}\n", tool_root.join("bin").display())
    );

    // No version and no repository: the action's own files, keyed by their content.
    let action = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(action.path().join("crates/tool/src")).unwrap();
    std::fs::write(action.path().join("Cargo.lock"), "# lock").unwrap();
    std::fs::write(
        action.path().join("crates/tool/src/main.rs"),
        "fn main() {}",
    )
    .unwrap();
    let action_path = action.path().display().to_string();
    let key = || {
        let r = Runner::new();
        let o = r.step("resolve", &[("GITHUB_ACTION_PATH", &action_path)]);
        assert_eq!(code(&o), 0, "{}", show(&o));
        r.output("key").unwrap()
    };
    let first = key();
    let prefix = "insforge-rls-Linux-X64-path-";
    assert!(
        first.starts_with(prefix) && first.len() == prefix.len() + 16,
        "{first}"
    );
    assert_eq!(key(), first, "the same files, the same key");
    std::fs::write(
        action.path().join("crates/tool/src/main.rs"),
        "fn main() { }",
    )
    .unwrap();
    assert_ne!(key(), first, "a changed source file must change the key");
}

#[test]
fn a_missing_variable_or_step_is_refused_with_exit_2() {
    let r = Runner::new();
    let o = r.step("deploy", &[]);
    assert_eq!(code(&o), 2, "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("::error title=insforge-rls::usage: run.sh"),
        "{}",
        show(&o)
    );
    let o = r.step("check", &[("GITHUB_STEP_SUMMARY", "")]);
    assert_eq!(code(&o), 2, "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("GITHUB_STEP_SUMMARY is not set"),
        "{}",
        show(&o)
    );
}
