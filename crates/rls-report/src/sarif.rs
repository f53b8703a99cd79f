//! SARIF 2.1.0 for the check and the lint, each result located at the migration line that made
//! the policy, table or function it is about (through [`Locator`]), with URIs relative to the
//! repository root (`uriBaseId` `%SRCROOT%`), so that GitHub code scanning annotates that line
//! of the pull request's diff. Levels: `error`, `warning`, `note`.

use serde_json::{Value, json};

use crate::input::{CheckInput, LintInput, LintLevel, Verdict};
use crate::locate::{Located, Locator};

/// The schema a log names; GitHub and the SARIF validators know it by this address.
pub const SARIF_SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";
const SRCROOT: &str = "%SRCROOT%";

/// A rule of a run.
struct RuleDef<'a> {
    id: &'a str,
    level: &'static str,
    short: &'a str,
    help: &'a str,
}

const LEAK: &str = "check.leak";
const LOST: &str = "check.lost_access";
const UNTESTED: &str = "check.untested_policy";
const SURVIVED: &str = "check.mutant_survived";
const DISAGREE: &str = "check.sql_http_disagreement";

const CHECK_RULES: [RuleDef<'static>; 5] = [
    RuleDef {
        id: LEAK,
        level: "error",
        short: "An actor saw or changed rows the access spec does not give them",
        help: "The spec check ran this operation as this actor on rows seeded for every actor, and \
               the database let it reach more than the spec allows. Tighten the USING / WITH CHECK \
               of the policies for this command on this table (the location is the one made last), \
               or correct the spec if the sharing is intended.",
    },
    RuleDef {
        id: LOST,
        level: "warning",
        short: "An actor could not do what the access spec allows them with their rows",
        help: "The spec check ran this operation as this actor and the database refused or \
               filtered out rows the spec gives them. Loosen the policy for this command (the \
               location is the one made last), grant the command, or correct the spec.",
    },
    RuleDef {
        id: UNTESTED,
        level: "note",
        short: "A policy clause no actor of the spec exercised",
        help: "Policy coverage: no seeded row made this clause or branch grant (or deny) for any \
               actor, so a change to it would go unnoticed. The hint says which actor or row \
               would exercise it; add it to the spec.",
    },
    RuleDef {
        id: SURVIVED,
        level: "warning",
        short: "A weakened copy of this policy passed the whole check",
        help: "The check generated a mutant of this policy (or function) — a clause loosened,                dropped or compared loosely — applied it to a clone, and no verdict and no lint                finding changed: the spec's matrices would not notice that change. Add the actor,                row or rule that tells them apart, or mark the mutant equivalent in the spec                ([mutants] equivalent) with the reason.",
    },
    RuleDef {
        id: DISAGREE,
        level: "error",
        short: "SQL and the HTTP API observed the same cell differently",
        help: "With --http the check runs every cell twice: in identity transactions and through                the records API with Clerk-shaped tokens. Here they saw or changed different rows:                what reaches Postgres over HTTP (the role, the claims) is not what the policies                expect. Compare the two observations in the message.",
    },
];

/// The check's SARIF log, pretty-printed.
pub fn sarif_check(input: &CheckInput, locator: &Locator) -> String {
    to_string(&sarif_check_value(input, locator))
}

/// The lint's SARIF log, pretty-printed.
pub fn sarif_lint(input: &LintInput, locator: &Locator) -> String {
    to_string(&sarif_lint_value(input, locator))
}

fn to_string(v: &Value) -> String {
    // A Value of strings and numbers always serializes.
    serde_json::to_string_pretty(v).unwrap_or_default() + "\n"
}

/// Table, command, rule.
type GroupKey<'a> = (&'a str, &'a str, &'static str);

/// The check's SARIF log as JSON.
pub fn sarif_check_value(input: &CheckInput, locator: &Locator) -> Value {
    // One result per table × command × kind of finding, listing its cells: they all point at
    // the same policies, and one annotation there reads better than a dozen on one line.
    let mut groups: Vec<(GroupKey<'_>, Vec<&crate::Cell>)> = Vec::new();
    for (table, cell) in input.cells() {
        if cell.verdict.is_ok() {
            continue;
        }
        let command = cell.command().unwrap_or(cell.operation.as_str());
        let key = (table, command, rule_of(&cell.verdict));
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, cells)) => cells.push(cell),
            None => groups.push((key, vec![cell])),
        }
    }
    let mut results = Vec::new();
    for ((table, command, rule), cells) in groups {
        let candidates = locator.policies_for(table, command);
        let (primary, related) = match candidates.split_first() {
            Some(((name, at), rest)) => (
                Some((at.clone(), format!("policy {name}"))),
                rest.iter()
                    .map(|(n, l)| (l.clone(), format!("policy {n} (also applies)")))
                    .collect(),
            ),
            None => (
                locator
                    .rls_enabled(table)
                    .or_else(|| locator.table(table))
                    .map(|l| (l, format!("table {table}"))),
                Vec::new(),
            ),
        };
        let policies = if candidates.is_empty() {
            format!("no policy on {table} for {command}")
        } else {
            format!(
                "policies for {command}: {}",
                candidates
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        const LISTED: usize = 10;
        let mut listed: Vec<String> = cells
            .iter()
            .take(LISTED)
            .map(|c| {
                format!(
                    "{} · {}: {} (observed: {})",
                    c.operation,
                    c.actor,
                    c.verdict.why().unwrap_or_default(),
                    c.observed
                )
            })
            .collect();
        if cells.len() > LISTED {
            listed.push(format!(
                "and {} more (see the JUnit report)",
                cells.len() - LISTED
            ));
        }
        let kind = cells[0].verdict.kind();
        let text = format!(
            "[{table}] {command}: {} cell{} {kind} ({policies}). {}",
            cells.len(),
            if cells.len() == 1 { "" } else { "s" },
            listed.join("; ")
        );
        results.push(result(rule, &text, primary, related, locator));
    }
    for p in &input.probes {
        let Some(why) = p.verdict.why() else {
            continue;
        };
        let at = p.table.as_deref().and_then(|t| {
            locator
                .rls_enabled(t)
                .or_else(|| locator.table(t))
                .map(|l| (l, format!("table {t}")))
        });
        let text = format!(
            "{}{} · {}: {} — {why} (observed: {})",
            p.table
                .as_deref()
                .map(|t| format!("[{t}] "))
                .unwrap_or_default(),
            p.suite,
            p.name,
            p.verdict.kind(),
            p.observed
        );
        results.push(result(rule_of(&p.verdict), &text, at, Vec::new(), locator));
    }
    for u in &input.untested {
        let at = locator
            .policy(&u.table, &u.policy)
            .map(|l| (l, format!("policy {}", u.policy)));
        let text = format!("UNTESTED {} — no {}: {}", u.what, u.missing, u.hint);
        results.push(result(UNTESTED, &text, at, Vec::new(), locator));
    }
    for m in input.mutants.iter().flatten() {
        if m.outcome != crate::MutantOutcome::Survived {
            continue;
        }
        let names = locator.policy_names(&m.table);
        let at = match m.policy(names.iter().map(String::as_str)) {
            Some(p) => locator
                .policy(&m.table, p)
                .map(|l| (l, format!("policy {p}"))),
            None => {
                // `(functions).name.operator`, or `table.table.operator`.
                let rest = m.id.strip_prefix(&format!("{}.", m.table)).unwrap_or(&m.id);
                let first = rest.split('.').next().unwrap_or_default();
                locator
                    .function(first)
                    .map(|l| (l, format!("function {first}")))
                    .or_else(|| {
                        locator
                            .rls_enabled(&m.table)
                            .or_else(|| locator.table(&m.table))
                            .map(|l| (l, format!("table {}", m.table)))
                    })
            }
        };
        let text = format!(
            "SURVIVED {}: no verdict and no lint finding changed with `{}`",
            m.id, m.sql
        );
        results.push(result(SURVIVED, &text, at, Vec::new(), locator));
    }
    // The lint the check ran: its findings in the same run, under the lint's rule ids.
    let mut rules: Vec<RuleDef<'_>> = CHECK_RULES.into_iter().collect();
    if let Some(lint) = &input.lint {
        let (lint_rules, lint_results) = lint_parts(lint, locator);
        rules.extend(lint_rules);
        results.extend(lint_results);
    }
    log(
        "check",
        &rules,
        results,
        "the spec check (insforge-rls check)",
    )
}

/// The lint's SARIF log as JSON.
pub fn sarif_lint_value(input: &LintInput, locator: &Locator) -> Value {
    let (rules, results) = lint_parts(input, locator);
    log("lint", &rules, results, "the RLS lint (insforge-rls lint)")
}

/// The lint's rules (its catalog, then any rule a finding cites that the catalog lacks) and
/// its results.
fn lint_parts<'a>(input: &'a LintInput, locator: &Locator) -> (Vec<RuleDef<'a>>, Vec<Value>) {
    let rules: Vec<RuleDef<'_>> = input
        .rules
        .iter()
        .map(|r| RuleDef {
            id: &r.id,
            level: level(r.level),
            short: &r.summary,
            help: &r.summary,
        })
        .collect();
    let mut extra = Vec::new();
    for f in &input.findings {
        if !rules.iter().any(|r| r.id == f.rule) {
            extra.push(RuleDef {
                id: &f.rule,
                level: level(f.level),
                short: &f.rule,
                help: &f.rule,
            });
        }
    }
    extra.sort_by_key(|r| r.id);
    extra.dedup_by_key(|r| r.id);
    let rules: Vec<RuleDef<'_>> = rules.into_iter().chain(extra).collect();
    let results = input
        .findings
        .iter()
        .map(|f| {
            let at = locator
                .lint_object(&f.rule, &f.object)
                .map(|l| (l, f.object.clone()));
            let text = format!("{}: {} Fix: {}", f.object, f.why, f.fix);
            let mut r = result(&f.rule, &text, at, Vec::new(), locator);
            // A finding may be more or less severe than its rule's usual level.
            r["level"] = json!(level(f.level));
            r
        })
        .collect();
    (rules, results)
}

/// Tags, and for what lets one user reach another's rows a `security-severity`, which GitHub
/// shows as the alert's severity (9.0 and up: critical; 7.0 to 8.9: high; 4.0 to 6.9: medium).
fn properties(d: &RuleDef<'_>) -> Value {
    let (tags, severity) = match (d.id, d.level) {
        (LEAK, _) => (vec!["security", "rls"], Some("9.1")),
        (LOST | DISAGREE, _) => (vec!["correctness", "rls"], None),
        (UNTESTED | SURVIVED, _) => (vec!["maintainability", "rls", "test-coverage"], None),
        (_, "error") => (vec!["security", "rls"], Some("8.0")),
        (_, "warning") => (vec!["security", "rls"], Some("5.0")),
        _ => (vec!["rls"], None),
    };
    let mut p = json!({ "tags": tags });
    if let Some(s) = severity {
        p["security-severity"] = json!(s);
    }
    p
}

fn rule_of(v: &Verdict) -> &'static str {
    match v {
        Verdict::LostAccess(_) => LOST,
        Verdict::Disagreement(_) => DISAGREE,
        _ => LEAK,
    }
}

fn level(l: LintLevel) -> &'static str {
    match l {
        LintLevel::Error => "error",
        LintLevel::Warn => "warning",
        LintLevel::Info => "note",
    }
}

fn physical(at: &Located) -> Value {
    let mut artifact = json!({ "uri": at.uri });
    if at.relative {
        artifact["uriBaseId"] = json!(SRCROOT);
    }
    json!({
        "artifactLocation": artifact,
        "region": { "startLine": at.line },
    })
}

/// A result at `at` (the object's name as its logical location), or at the first migration
/// when no migration made the object (a role, a function of the base set): GitHub drops a
/// result without a location.
fn result(
    rule: &str,
    text: &str,
    at: Option<(Located, String)>,
    related: Vec<(Located, String)>,
    locator: &Locator,
) -> Value {
    let mut r = json!({
        "ruleId": rule,
        "message": { "text": text },
    });
    let location = match at {
        Some((l, what)) => Some(json!({
            "physicalLocation": physical(&l),
            "logicalLocations": [{ "fullyQualifiedName": what }],
        })),
        None => locator.fallback().map(|l| {
            json!({
                "physicalLocation": physical(&l),
                "message": { "text": "no migration of the folder creates this object; shown at the first migration" },
            })
        }),
    };
    if let Some(location) = location {
        r["locations"] = json!([location]);
    }
    if !related.is_empty() {
        r["relatedLocations"] = related
            .iter()
            .enumerate()
            .map(|(i, (l, what))| {
                json!({
                    "id": i + 1,
                    "physicalLocation": physical(l),
                    "message": { "text": what },
                })
            })
            .collect();
    }
    r
}

fn log(kind: &str, rules: &[RuleDef<'_>], mut results: Vec<Value>, what: &str) -> Value {
    for r in &mut results {
        let id = r["ruleId"].as_str().unwrap_or_default().to_owned();
        if let Some(i) = rules.iter().position(|d| d.id == id) {
            r["ruleIndex"] = json!(i);
            if r.get("level").is_none() {
                r["level"] = json!(rules[i].level);
            }
        }
    }
    json!({
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "insforge-rls",
                "version": env!("CARGO_PKG_VERSION"),
                "semanticVersion": env!("CARGO_PKG_VERSION"),
                "fullName": format!("insforge-rls: {what}"),
                "rules": rules.iter().map(|d| json!({
                    "id": d.id,
                    "name": d.id,
                    "shortDescription": { "text": d.short },
                    "fullDescription": { "text": d.help },
                    "help": { "text": d.help },
                    "defaultConfiguration": { "level": d.level },
                    "properties": properties(d),
                })).collect::<Vec<_>>(),
            }},
            // Keeps the check's and the lint's alerts apart in code scanning.
            "automationDetails": { "id": format!("insforge-rls/{kind}/") },
            "columnKind": "utf16CodeUnits",
            "results": results,
        }],
    })
}
