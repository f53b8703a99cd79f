//! Markdown for `$GITHUB_STEP_SUMMARY` or a pull-request comment: the verdict and counts per
//! table, then only the cells that failed (a passing matrix is hundreds of cells nobody reads
//! there), then the policies no actor exercised, folded.

use std::fmt::Write as _;

use crate::input::{CheckInput, LintInput, LintLevel};

/// Failing cells listed at most: a pull-request comment holds 65,536 characters.
const MAX_ROWS: usize = 100;

/// The check's summary and failing cells.
pub fn markdown(input: &CheckInput) -> String {
    let (leaks, lost) = (input.leak_count(), input.lost_count());
    let mut out = String::new();
    let verdict = if input.passed() {
        "passed".to_owned()
    } else {
        let disagree = input.disagreement_count();
        let mut v = format!("FAILED — {leaks} leak{}, {lost} lost access", plural(leaks));
        if disagree > 0 {
            let _ = write!(v, ", {disagree} SQL/HTTP disagreement{}", plural(disagree));
        }
        let untested = input.untested.len();
        if untested > 0 {
            let _ = write!(v, ", {untested} untested policy clause{}", plural(untested));
        }
        v
    };
    let _ = writeln!(out, "## insforge-rls check: {verdict}\n");
    let spec = input
        .spec
        .as_ref()
        .map(|s| format!(" of `{}`", escape(&s.display().to_string())))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "{} cells{spec}: {} tables × operations × {} actors.\n",
        input.cell_count(),
        input.tables.len(),
        input.actors.len()
    );
    out.push_str("| table | cells | leaks | lost access | not run |\n|---|---:|---:|---:|---:|\n");
    for t in &input.tables {
        let count = |f: &dyn Fn(&crate::Cell) -> bool| t.cells.iter().filter(|c| f(c)).count();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            escape(&t.table),
            t.cells.len(),
            count(&|c| matches!(c.verdict, crate::Verdict::Leak(_))),
            count(&|c| matches!(c.verdict, crate::Verdict::LostAccess(_))),
            count(&|c| c.not_applicable()),
        );
    }
    let failing: Vec<(String, &str, &str, &str, &str, &str)> = input
        .cells()
        .filter_map(|(t, c)| {
            Some((
                t.to_owned(),
                c.operation.as_str(),
                c.actor.as_str(),
                c.verdict.kind(),
                c.verdict.why()?,
                c.observed.as_str(),
            ))
        })
        .chain(input.probes.iter().filter_map(|p| {
            Some((
                p.table.clone().unwrap_or_else(|| p.suite.clone()),
                p.suite.as_str(),
                p.name.as_str(),
                p.verdict.kind(),
                p.verdict.why()?,
                p.observed.as_str(),
            ))
        }))
        .collect();
    if !failing.is_empty() {
        let _ = writeln!(
            out,
            "\n### Failing cells\n\n| table | operation | actor | finding | observed |\n|---|---|---|---|---|"
        );
        for (t, op, actor, kind, why, observed) in failing.iter().take(MAX_ROWS) {
            let _ = writeln!(
                out,
                "| {} | {} | {} | **{}**: {} | {} |",
                escape(t),
                escape(op),
                escape(actor),
                kind,
                escape(why),
                escape(observed)
            );
        }
        if failing.len() > MAX_ROWS {
            let _ = writeln!(
                out,
                "\n… and {} more failing cells: the JUnit and SARIF reports list every one.",
                failing.len() - MAX_ROWS
            );
        }
    }
    if !input.untested.is_empty() {
        let _ = writeln!(
            out,
            "\n<details><summary>{} policy clause{} no actor exercised</summary>\n",
            input.untested.len(),
            if input.untested.len() == 1 { "" } else { "s" }
        );
        for u in &input.untested {
            let _ = writeln!(
                out,
                "- `{}` — no {}: {}",
                u.what.replace('`', "'"),
                u.missing,
                escape(&u.hint)
            );
        }
        out.push_str("\n</details>\n");
    }
    if let Some(mutants) = &input.mutants {
        mutation(&mut out, mutants);
    }
    if let Some(lint) = &input.lint {
        // The lint's own report, one heading level down.
        out.push('\n');
        out.push_str(&markdown_lint(lint).replacen("## ", "### ", 1));
    }
    out
}

/// The mutation score, each survivor with its SQL, the equivalent and not-run ones folded.
fn mutation(out: &mut String, mutants: &[crate::MutantResult]) {
    use crate::MutantOutcome as O;
    let (killed, judged) = crate::mutation_score(mutants);
    let pct = if judged == 0 {
        100.0
    } else {
        100.0 * killed as f64 / judged as f64
    };
    let _ = writeln!(
        out,
        "\n### Mutants\n\nmutation score: {pct:.0}% ({killed} of {judged} killed; {} generated)",
        mutants.len()
    );
    let survivors: Vec<_> = mutants
        .iter()
        .filter(|m| m.outcome == O::Survived)
        .collect();
    if !survivors.is_empty() {
        out.push_str("\n| survived | what it ran |\n|---|---|\n");
        for m in survivors {
            let _ = writeln!(out, "| `{}` | `{}` |", code(&m.id), code(&m.sql));
        }
    }
    let other: Vec<String> = mutants
        .iter()
        .filter_map(|m| match &m.outcome {
            O::Equivalent(why) => Some(format!("- equivalent `{}` — {}", code(&m.id), escape(why))),
            O::NotRun(why) => Some(format!("- NOT RUN `{}` — {}", code(&m.id), escape(why))),
            _ => None,
        })
        .collect();
    if !other.is_empty() {
        let _ = writeln!(
            out,
            "\n<details><summary>{} equivalent or not run</summary>\n\n{}\n\n</details>",
            other.len(),
            other.join("\n")
        );
    }
}

/// Text for inside a code span of a table cell.
fn code(s: &str) -> String {
    s.replace('`', "'").replace('|', "\\|").replace('\n', " ")
}

/// What changed between two checks of one spec — the base branch's and the pull request's,
/// say: the counts before and after, then every cell (table × operation × actor) whose verdict
/// or observation differs, or that only one of them has.
pub fn markdown_changes(before: &CheckInput, after: &CheckInput) -> String {
    use std::collections::BTreeMap;
    type Key<'a> = (&'a str, &'a str, &'a str);
    fn index(input: &CheckInput) -> BTreeMap<Key<'_>, &crate::Cell> {
        input
            .cells()
            .map(|(t, c)| ((t, c.operation.as_str(), c.actor.as_str()), c))
            .collect()
    }
    let (old, new) = (index(before), index(after));
    let show = |c: Option<&&crate::Cell>| match c {
        None => "(no such cell)".to_owned(),
        Some(c) => match c.verdict.why() {
            None => escape(&c.observed),
            Some(why) => format!(
                "**{}**: {} ({})",
                c.verdict.kind(),
                escape(why),
                escape(&c.observed)
            ),
        },
    };
    let mut rows = Vec::new();
    // In the new run's order, then the cells only the old run has.
    let keys = after
        .cells()
        .map(|(t, c)| (t, c.operation.as_str(), c.actor.as_str()))
        .chain(
            before
                .cells()
                .map(|(t, c)| (t, c.operation.as_str(), c.actor.as_str()))
                .filter(|k| !new.contains_key(k)),
        );
    for k in keys {
        let (a, b) = (old.get(&k), new.get(&k));
        let same = match (a, b) {
            (Some(a), Some(b)) => a.observed == b.observed && a.verdict == b.verdict,
            _ => false,
        };
        if !same {
            rows.push(format!(
                "| {} | {} | {} | {} | {} |",
                escape(k.0),
                escape(k.1),
                escape(k.2),
                show(a),
                show(b)
            ));
        }
    }
    let counts =
        |i: &CheckInput| format!("{} leaks, {} lost access", i.leak_count(), i.lost_count());
    let mut out = format!(
        "## insforge-rls check: {} cell{} changed\n\nbefore: {}; after: {}.\n",
        rows.len(),
        plural(rows.len()),
        counts(before),
        counts(after)
    );
    if !rows.is_empty() {
        out.push_str("\n| table | operation | actor | before | after |\n|---|---|---|---|---|\n");
        for row in rows.iter().take(MAX_ROWS) {
            out.push_str(row);
            out.push('\n');
        }
        if rows.len() > MAX_ROWS {
            let _ = writeln!(out, "\n… and {} more changed cells.", rows.len() - MAX_ROWS);
        }
    }
    out
}

/// The lint's summary and findings.
pub fn markdown_lint(input: &LintInput) -> String {
    let count = |l| input.findings.iter().filter(|f| f.level == l).count();
    let (e, w, i) = (
        count(LintLevel::Error),
        count(LintLevel::Warn),
        count(LintLevel::Info),
    );
    let mut out = format!(
        "## insforge-rls lint: {e} error{}, {w} warning{}, {i} info\n",
        plural(e),
        plural(w)
    );
    if input.findings.is_empty() {
        out.push_str("\nNo findings.\n");
        return out;
    }
    out.push_str("\n| level | rule | object | why | fix |\n|---|---|---|---|---|\n");
    for f in &input.findings {
        let level = match f.level {
            LintLevel::Error => "error",
            LintLevel::Warn => "warning",
            LintLevel::Info => "info",
        };
        let _ = writeln!(
            out,
            "| {level} | `{}` | {} | {} | {} |",
            f.rule,
            escape(&f.object),
            escape(&f.why),
            escape(&f.fix)
        );
    }
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Text safe inside a table cell: no pipe ends the cell, no newline ends the row, no `<` starts
/// HTML.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace("\r\n", "<br>")
        .replace('\n', "<br>")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cell, TableCells, Verdict};

    #[test]
    fn a_long_list_of_failing_cells_is_cut_and_says_how_many_more() {
        let cells = (0..150)
            .map(|i| Cell {
                operation: "select".into(),
                actor: format!("actor{i}"),
                observed: "sees all".into(),
                verdict: Verdict::Leak("sees a row of someone".into()),
            })
            .collect();
        let input = CheckInput {
            tables: vec![TableCells {
                table: "t".into(),
                cells,
            }],
            ..CheckInput::default()
        };
        let md = markdown(&input);
        assert_eq!(md.matches("| t | select | actor").count(), MAX_ROWS);
        assert!(md.contains("… and 50 more failing cells"), "{md}");
        assert!(md.len() < 65_536);
    }
}
