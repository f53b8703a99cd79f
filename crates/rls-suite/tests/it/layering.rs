//! The engine's shape, checked: each stage module imports only the model and earlier stages,
//! and the engine imports nothing from the todos layers, the mutation run or the facades kept
//! under old names. A new import that runs backwards fails here, naming the file and the line.

use std::path::{Path, PathBuf};

/// The engine's modules in the order data flows through them (`run` drives them all).
const ORDER: [&str; 16] = [
    "model",
    "bind",
    "seed",
    "expect",
    "plan",
    "observe",
    "judge",
    "tokens",
    "hostile",
    "pool",
    "coverage",
    "functions",
    "report",
    "surfaces",
    "api_only",
    "run",
];

/// Crate modules outside the engine that it may use: its input and a leaf parser.
const ALLOWED_OUTSIDE: [&str; 2] = ["spec", "policy_expr"];

fn src() -> PathBuf {
    harness::state::workspace_root().join("crates/rls-suite/src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its comments and without its unit tests (which `use super::*`).
fn code_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            break;
        }
        let code = line.split("//").next().unwrap_or("");
        out.push((n + 1, code.to_owned()));
    }
    out
}

/// The module names a line refers to after `prefix` (`super::seed::images` → `seed`).
fn refs<'a>(line: &'a str, prefix: &str) -> Vec<&'a str> {
    line.match_indices(prefix)
        .map(|(i, _)| {
            let rest = &line[i + prefix.len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .filter(|name| !name.is_empty())
        .collect()
}

#[test]
fn engine_stages_import_only_earlier_stages_and_nothing_outside() {
    let engine = src().join("engine");
    let mut files = Vec::new();
    rust_files(&engine, &mut files);
    files.sort();
    assert!(
        files.len() > ORDER.len(),
        "no engine sources under {engine:?}"
    );
    let mut wrong = Vec::new();
    for path in &files {
        let rel = path.strip_prefix(&engine).unwrap();
        let parts: Vec<&str> = rel
            .iter()
            .map(|p| p.to_str().unwrap().trim_end_matches(".rs"))
            .collect();
        if parts == ["mod"] {
            continue; // engine/mod.rs declares the stages and re-exports their results
        }
        let stage = parts[0];
        let Some(mine) = ORDER.iter().position(|s| *s == stage) else {
            wrong.push(format!(
                "{}: not a known stage (add it to ORDER)",
                rel.display()
            ));
            continue;
        };
        // In `stage/mod.rs` `super::` is the engine, in `stage/part.rs` it is the stage.
        let nested = parts.len() > 1 && parts.last() != Some(&"mod");
        let text = std::fs::read_to_string(path).unwrap();
        for (n, line) in code_lines(&text) {
            let mut used: Vec<&str> = refs(&line, "crate::engine::");
            if nested {
                used.extend(refs(&line, "super::super::"));
            } else {
                used.extend(refs(&line, "super::"));
            }
            for other in used {
                if other == "super" {
                    continue;
                }
                match ORDER.iter().position(|s| *s == other) {
                    Some(theirs) if theirs > mine => wrong.push(format!(
                        "{}:{n}: the {stage} stage imports the later {other}",
                        rel.display()
                    )),
                    Some(_) => {}
                    None => wrong.push(format!(
                        "{}:{n}: imports engine::{other}, which is no stage",
                        rel.display()
                    )),
                }
            }
            for outside in refs(&line, "crate::") {
                if outside != "engine" && !ALLOWED_OUTSIDE.contains(&outside) {
                    wrong.push(format!(
                        "{}:{n}: the engine imports crate::{outside} (todos layers, mutation and \
                         the old-name facades build on the engine, not the other way round)",
                        rel.display()
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
