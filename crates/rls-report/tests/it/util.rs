//! Shared helpers: where things are, the validators, and how a missing tool is reported.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

pub fn root() -> PathBuf {
    harness::state::workspace_root()
}

/// The vendored schemas (tests/schemas, see its README for their sources).
pub fn schemas() -> PathBuf {
    root().join("crates/rls-report/tests/schemas")
}

/// Reports a skipped test where a person sees it — or fails, when `RLS_REPORT_TOOLS=required`
/// says the tools must be there (CI).
pub fn skip(test: &str, reason: &str) {
    if std::env::var("RLS_REPORT_TOOLS").as_deref() == Ok("required") {
        panic!("{test}: RLS_REPORT_TOOLS=required, but {reason}");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {reason}");
}

/// A program on PATH (or named by `env`).
pub fn tool(name: &str, env: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// xmllint's verdict on `xml` against junit-10.xsd: `None` when xmllint is missing.
pub fn xmllint_junit(xml: &str) -> Option<Result<(), String>> {
    let xmllint = tool("xmllint", "XMLLINT")?;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.xml");
    std::fs::write(&file, xml).unwrap();
    let out = Command::new(xmllint)
        .arg("--noout")
        .arg("--schema")
        .arg(schemas().join("junit-10.xsd"))
        .arg(&file)
        .output()
        .unwrap();
    Some(if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    })
}

/// Asserts `xml` is valid JUnit, or reports the test skipped when xmllint is missing.
/// Returns whether it validated.
pub fn assert_valid_junit(test: &str, xml: &str) -> bool {
    match xmllint_junit(xml) {
        None => {
            skip(
                test,
                "xmllint is not installed (Debian: apt-get install libxml2-utils): the JUnit was not validated",
            );
            false
        }
        Some(Ok(())) => true,
        Some(Err(e)) => {
            panic!("{test}: the JUnit does not validate against junit-10.xsd:\n{e}\n{xml}")
        }
    }
}

/// The SARIF 2.1.0 schema's complaints about `log` (empty: valid).
pub fn sarif_errors(log: &Value) -> Vec<String> {
    let text = std::fs::read_to_string(schemas().join("sarif-schema-2.1.0.json")).unwrap();
    let schema: Value = serde_json::from_str(&text).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    validator
        .iter_errors(log)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

pub fn assert_valid_sarif(log: &Value) {
    let errors = sarif_errors(log);
    assert!(
        errors.is_empty(),
        "the SARIF does not validate:\n{}\n{}",
        errors.join("\n"),
        serde_json::to_string_pretty(log).unwrap()
    );
}

/// The 1-based line of the first line of `path` that contains `needle`.
pub fn line_of(path: &Path, needle: &str) -> u64 {
    let text = std::fs::read_to_string(path).unwrap();
    let i = text
        .lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in {}", path.display()));
    i as u64 + 1
}
