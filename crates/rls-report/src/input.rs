//! What the reports are written from: small, plain types of this crate's own, so that only the
//! `From` conversions here know the suite's and the lint's report types.

use std::path::PathBuf;

/// How one cell was judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// More than the spec allows: the actor saw or changed rows that are not theirs.
    Leak(String),
    /// Less than the spec allows: the actor could not reach their own rows.
    LostAccess(String),
    /// The same cell observed differently in SQL and over HTTP (`check --http`).
    Disagreement(String),
}

impl Verdict {
    pub fn is_ok(&self) -> bool {
        matches!(self, Self::Ok)
    }

    /// The reason, for a verdict other than OK.
    pub fn why(&self) -> Option<&str> {
        match self {
            Self::Ok => None,
            Self::Leak(why) | Self::LostAccess(why) | Self::Disagreement(why) => Some(why),
        }
    }

    /// `leak`, `lost access`, `disagreement` or `ok`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Leak(_) => "leak",
            Self::LostAccess(_) => "lost access",
            Self::Disagreement(_) => "disagreement",
        }
    }
}

/// How the operation of a cell observed over HTTP (`check --http`) begins.
pub const HTTP_PREFIX: &str = "HTTP · ";

/// One operation by one actor on one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    /// The matrix row's label: `select`, `insert · allowed row`, `hand over project_id · own row`, …
    pub operation: String,
    /// The actor's key (`ada`, `anon`, …).
    pub actor: String,
    /// What happened (`sees ada:2 ben:1`, `refused 42501`, `n/a`).
    pub observed: String,
    pub verdict: Verdict,
}

impl Cell {
    /// The SQL command the operation runs (`select`, `insert`, `update` or `delete`), read from
    /// its label; `None` for a label this crate does not know.
    pub fn command(&self) -> Option<&'static str> {
        let op = self
            .operation
            .strip_prefix(HTTP_PREFIX)
            .unwrap_or(&self.operation);
        let first = op.split_whitespace().next()?;
        Some(match first {
            "select" => "select",
            "insert" => "insert",
            // "take over" and "hand over <column>" are updates of the owner or a parent key.
            "update" | "take" | "hand" => "update",
            "delete" => "delete",
            _ => return None,
        })
    }

    /// The cell did not run: no seed row fits it, or the observer cannot carry it out.
    pub fn not_applicable(&self) -> bool {
        self.verdict.is_ok() && self.observed.starts_with("n/a")
    }
}

/// Every cell of one spec table, operation by operation, actor by actor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCells {
    pub table: String,
    pub cells: Vec<Cell>,
}

/// A finding outside the matrices: a hostile token's read, the pool-bleed run (over HTTP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// `hostile tokens`, `pool bleed` or `functions`.
    pub suite: String,
    /// The table it read, when it is one table's.
    pub table: Option<String>,
    /// The case (`expired token`, `reads`).
    pub name: String,
    pub observed: String,
    pub verdict: Verdict,
}

/// A policy clause or branch no actor exercised (policy coverage).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Untested {
    pub table: String,
    pub policy: String,
    /// `table.policy using · branch 1`.
    pub what: String,
    /// `grant`, `denial` or `anything`.
    pub missing: String,
    pub hint: String,
}

/// A spec check's results.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckInput {
    pub tables: Vec<TableCells>,
    /// `key = id` for each actor.
    pub actors: Vec<(String, String)>,
    pub probes: Vec<Probe>,
    pub untested: Vec<Untested>,
    /// The mutants generated from the catalog, when the check ran them.
    pub mutants: Option<Vec<MutantResult>>,
    /// The lint the check ran on the same catalog, when it is to be reported with it.
    pub lint: Option<LintInput>,
    /// The spec file, as the command was given it (named in the reports).
    pub spec: Option<PathBuf>,
}

/// What became of one mutant (a policy or function weakened one way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MutantOutcome {
    /// The first finding that noticed it.
    Killed(String),
    /// No verdict and no lint finding changed: the check would not notice this change.
    Survived,
    /// A survivor the spec marks equivalent, with its reason.
    Equivalent(String),
    /// It could not be judged, with why.
    NotRun(String),
}

/// One mutant and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MutantResult {
    /// `<table>.<policy or "table">.<operator>`.
    pub id: String,
    /// The table whose policy it changes (`(functions)` for a function every table may call).
    pub table: String,
    pub sql: String,
    pub outcome: MutantOutcome,
}

impl MutantResult {
    /// The policy it changes, when it changes one of the given names (its id is
    /// `table.policy.operator`, and names may hold dots: the longest known name wins).
    pub fn policy<'a>(&self, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
        let rest = self.id.strip_prefix(&format!("{}.", self.table))?;
        known
            .into_iter()
            .filter(|p| rest.starts_with(&format!("{p}.")))
            .max_by_key(|p| p.len())
    }
}

/// (killed, judged): equivalent and not-run mutants are not judged.
pub fn mutation_score(results: &[MutantResult]) -> (usize, usize) {
    let killed = results
        .iter()
        .filter(|m| matches!(m.outcome, MutantOutcome::Killed(_)))
        .count();
    let survived = results
        .iter()
        .filter(|m| m.outcome == MutantOutcome::Survived)
        .count();
    (killed, killed + survived)
}

impl From<&rls_suite::mutation::MutationReport> for CheckInput {
    /// Only the mutants; see [`CheckInput::with_mutants`].
    fn from(r: &rls_suite::mutation::MutationReport) -> Self {
        Self {
            mutants: Some(mutants_of(r)),
            ..Self::default()
        }
    }
}

impl CheckInput {
    /// Adds the lint's findings (SARIF: in the check's run, under the lint's rule ids;
    /// markdown: a section of their own).
    pub fn with_lint(mut self, r: &rls_lint::Report) -> Self {
        self.lint = Some(r.into());
        self
    }

    /// Adds a run of the same matrices over HTTP (`check --http`): its cells join their
    /// table's, their operation starting with [`HTTP_PREFIX`]; its hostile-token and pool-bleed
    /// findings join the probes; and each disagreement between the two runs
    /// (`[table] operation · actor: SQL "…" vs HTTP "…"`, as `CheckReport::disagreements`
    /// writes them) becomes a probe judged [`Verdict::Disagreement`].
    pub fn with_http(
        mut self,
        http: &rls_suite::engine::CheckReport,
        disagreements: &[String],
    ) -> Self {
        let other = CheckInput::from(http);
        for t in other.tables {
            let cells = t.cells.into_iter().map(|c| Cell {
                operation: format!("{HTTP_PREFIX}{}", c.operation),
                ..c
            });
            match self.tables.iter_mut().find(|mine| mine.table == t.table) {
                Some(mine) => mine.cells.extend(cells),
                None => self.tables.push(TableCells {
                    table: t.table,
                    cells: cells.collect(),
                }),
            }
        }
        self.probes.extend(other.probes);
        for d in disagreements {
            let (table, rest) = d
                .strip_prefix('[')
                .and_then(|r| r.split_once("] "))
                .map_or((None, d.as_str()), |(t, r)| (Some(t.to_owned()), r));
            let (name, observed) = rest.split_once(": ").unwrap_or((rest, ""));
            self.probes.push(Probe {
                suite: "SQL vs HTTP".into(),
                table,
                name: name.to_owned(),
                observed: observed.to_owned(),
                verdict: Verdict::Disagreement(format!(
                    "SQL and HTTP observed this cell differently: {observed}"
                )),
            });
        }
        self
    }

    /// Adds a mutant run's outcomes.
    pub fn with_mutants(mut self, r: &rls_suite::mutation::MutationReport) -> Self {
        self.mutants = Some(mutants_of(r));
        self
    }
}

fn mutants_of(r: &rls_suite::mutation::MutationReport) -> Vec<MutantResult> {
    use rls_suite::mutation::Outcome;
    r.results
        .iter()
        .map(|(m, o)| MutantResult {
            id: m.id.clone(),
            table: m.table.clone(),
            sql: m.sql.clone(),
            outcome: match o {
                Outcome::Killed(by) => MutantOutcome::Killed(by.clone()),
                Outcome::Survived => MutantOutcome::Survived,
                Outcome::Equivalent(why) => MutantOutcome::Equivalent(why.clone()),
                Outcome::NotRun(why) => MutantOutcome::NotRun(why.clone()),
            },
        })
        .collect()
}

impl CheckInput {
    /// Every matrix cell, with its table.
    pub fn cells(&self) -> impl Iterator<Item = (&str, &Cell)> {
        self.tables
            .iter()
            .flat_map(|t| t.cells.iter().map(move |c| (t.table.as_str(), c)))
    }

    pub fn cell_count(&self) -> usize {
        self.tables.iter().map(|t| t.cells.len()).sum()
    }

    /// Cells and probes that leak.
    pub fn leak_count(&self) -> usize {
        self.count(|v| matches!(v, Verdict::Leak(_)))
    }

    /// Cells and probes that lost access.
    pub fn lost_count(&self) -> usize {
        self.count(|v| matches!(v, Verdict::LostAccess(_)))
    }

    /// Cells SQL and HTTP observed differently.
    pub fn disagreement_count(&self) -> usize {
        self.count(|v| matches!(v, Verdict::Disagreement(_)))
    }

    /// No leak, no lost access, no disagreement: the check passes.
    /// No leak, no lost access, no disagreement, and no policy clause or branch left
    /// unexercised (that the spec does not accept): exit 0.
    pub fn passed(&self) -> bool {
        self.leak_count() == 0
            && self.lost_count() == 0
            && self.disagreement_count() == 0
            && self.untested.is_empty()
    }

    fn count(&self, pick: impl Fn(&Verdict) -> bool) -> usize {
        self.cells().filter(|(_, c)| pick(&c.verdict)).count()
            + self.probes.iter().filter(|p| pick(&p.verdict)).count()
    }
}

impl From<&rls_suite::engine::Verdict> for Verdict {
    fn from(v: &rls_suite::engine::Verdict) -> Self {
        use rls_suite::engine::Verdict as V;
        match v {
            V::Ok => Self::Ok,
            V::Leak(why) => Self::Leak(why.clone()),
            V::LostAccess(why) => Self::LostAccess(why.clone()),
        }
    }
}

impl From<&rls_suite::engine::TableMatrix> for TableCells {
    fn from(t: &rls_suite::engine::TableMatrix) -> Self {
        let mut cells = Vec::new();
        for (op, row) in t.ops.iter().zip(&t.cells) {
            for (actor, cell) in t.actors.iter().zip(row) {
                cells.push(Cell {
                    operation: op.clone(),
                    actor: actor.clone(),
                    observed: cell.text.clone(),
                    verdict: (&cell.verdict).into(),
                });
            }
        }
        Self {
            table: t.table.clone(),
            cells,
        }
    }
}

impl From<&rls_suite::engine::CheckReport> for CheckInput {
    fn from(r: &rls_suite::engine::CheckReport) -> Self {
        let mut probes: Vec<Probe> = r
            .hostile
            .iter()
            .map(|h| Probe {
                suite: "hostile tokens".into(),
                table: Some(h.table.clone()),
                name: h.case.clone(),
                observed: format!(
                    "status {} (promised {}) {}: {}",
                    h.status, h.contract, h.error, h.observed
                ),
                verdict: (&h.verdict).into(),
            })
            .collect();
        if let Some(pool) = &r.pool {
            let leaks = pool.leaks.iter().map(|l| Verdict::Leak(l.clone()));
            let lost = pool.lost.iter().map(|l| Verdict::LostAccess(l.clone()));
            let findings: Vec<Verdict> = leaks.chain(lost).collect();
            let observed = format!("{} authenticated reads through one pool", pool.reads);
            if findings.is_empty() {
                probes.push(Probe {
                    suite: "pool bleed".into(),
                    table: None,
                    name: "reads".into(),
                    observed: observed.clone(),
                    verdict: Verdict::Ok,
                });
            }
            for (i, verdict) in findings.into_iter().enumerate() {
                probes.push(Probe {
                    suite: "pool bleed".into(),
                    table: None,
                    name: format!("finding {}", i + 1),
                    observed: observed.clone(),
                    verdict,
                });
            }
        }
        // A function call per actor: a row it returned or wrote beyond the caller's rules is
        // a leak like a matrix cell's.
        if let Some(f) = &r.functions {
            for (label, row) in f.functions.iter().zip(&f.cells) {
                for (actor, (text, verdict)) in f.actors.iter().zip(row) {
                    probes.push(Probe {
                        suite: "functions".into(),
                        table: None,
                        name: format!("{label} · {actor}"),
                        observed: text.clone(),
                        verdict: verdict.into(),
                    });
                }
            }
        }
        let untested = r
            .coverage
            .as_ref()
            .map(|cov| {
                // Those the spec accepts (`[unexercised]`) do not fail the check.
                cov.unexercised()
                    .into_iter()
                    .filter_map(|u| {
                        let p = cov.policies.iter().find(|p| u.is_of(&p.table, &p.policy))?;
                        Some(Untested {
                            table: p.table.clone(),
                            policy: p.policy.clone(),
                            what: u.what,
                            missing: u.missing.to_owned(),
                            hint: u.hint,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            tables: r.tables.iter().map(TableCells::from).collect(),
            actors: r.actors.clone(),
            probes,
            untested,
            mutants: None,
            lint: None,
            spec: None,
        }
    }
}

/// How bad a lint finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LintLevel {
    Info,
    Warn,
    Error,
}

impl From<rls_lint::Level> for LintLevel {
    fn from(l: rls_lint::Level) -> Self {
        match l {
            rls_lint::Level::Info => Self::Info,
            rls_lint::Level::Warn => Self::Warn,
            rls_lint::Level::Error => Self::Error,
        }
    }
}

/// One lint finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LintFinding {
    pub rule: String,
    pub level: LintLevel,
    /// `public.todos`, `policy p on public.todos`, `function public.f(uuid)`, `view public.v`,
    /// `column public.t.c`, `role r`, `schema s`.
    pub object: String,
    pub why: String,
    pub fix: String,
}

/// A rule the lint knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LintRule {
    pub id: String,
    pub level: LintLevel,
    pub summary: String,
}

/// A lint run's findings and the rules they may cite.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LintInput {
    pub findings: Vec<LintFinding>,
    pub rules: Vec<LintRule>,
}

impl From<&rls_lint::Report> for LintInput {
    fn from(r: &rls_lint::Report) -> Self {
        Self {
            findings: r
                .findings
                .iter()
                .map(|f| LintFinding {
                    rule: f.rule.to_owned(),
                    level: f.level.into(),
                    object: f.object.clone(),
                    why: f.why.clone(),
                    fix: f.fix.clone(),
                })
                .collect(),
            rules: rls_lint::RULES
                .iter()
                .map(|r| LintRule {
                    id: r.id.to_owned(),
                    level: r.level.into(),
                    summary: r.summary.to_owned(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mutant_names_the_longest_known_policy_its_id_starts_with() {
        let m = MutantResult {
            id: "notes.read.all.using.loose_lower".into(),
            table: "notes".into(),
            sql: String::new(),
            outcome: MutantOutcome::Survived,
        };
        assert_eq!(m.policy(["read", "read.all", "write"]), Some("read.all"));
        assert_eq!(m.policy(["write"]), None);
        let cell = |op: &str| Cell {
            operation: op.into(),
            actor: "a".into(),
            observed: "n/a".into(),
            verdict: Verdict::Ok,
        };
        assert_eq!(cell("take over · forbidden row").command(), Some("update"));
        assert_eq!(
            cell("hand over project_id · own row").command(),
            Some("update")
        );
        assert_eq!(cell("select via projects").command(), Some("select"));
        assert_eq!(cell("upsert").command(), None);
        assert!(cell("select").not_applicable());
    }
}
