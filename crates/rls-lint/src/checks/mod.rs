//! The rules themselves, run over a loaded [`Catalog`]: each submodule covers one kind of
//! object and pushes [`Finding`]s; this module prepares what they share (analysed policies,
//! owner columns, which functions policies reach).

mod functions;
mod policies;
mod roles;
mod tables;
mod views;

use std::collections::{BTreeMap, BTreeSet};

use crate::analysis::{Analysis, ExprFacts};
use crate::catalog::{Catalog, Column, Policy, Relation};
use crate::options::LintOptions;
use crate::report::{Finding, Level, Report};

/// A checked table with its analysed policies.
#[derive(Debug)]
pub(crate) struct TableView<'c> {
    pub relation: &'c Relation,
    pub columns: &'c [Column],
    pub policies: Vec<PolicyView<'c>>,
    /// Columns that hold the owning user's id: compared with the caller's id in a policy, or
    /// defaulting to it. A table with any is *user-owned*.
    pub owner_columns: BTreeSet<String>,
}

impl TableView<'_> {
    pub(crate) fn user_owned(&self) -> bool {
        !self.owner_columns.is_empty()
    }
}

#[derive(Debug)]
pub(crate) struct PolicyView<'c> {
    pub policy: &'c Policy,
    pub using: Option<ExprFacts>,
    pub check: Option<ExprFacts>,
}

impl PolicyView<'_> {
    pub(crate) fn object(&self, table: &Relation) -> String {
        format!("policy {} on {}", self.policy.name, table.qualified())
    }

    pub(crate) fn clauses(&self) -> impl Iterator<Item = &ExprFacts> {
        self.using.iter().chain(self.check.iter())
    }
}

/// Everything the checks read.
#[derive(Debug)]
pub(crate) struct Context<'c> {
    pub catalog: &'c Catalog,
    pub options: &'c LintOptions,
    pub analysis: Analysis<'c>,
    pub tables: Vec<TableView<'c>>,
    /// Function index → the policies and defaults that reach it (directly or through calls).
    pub used_by: BTreeMap<usize, BTreeSet<String>>,
}

impl<'c> Context<'c> {
    fn new(catalog: &'c Catalog, options: &'c LintOptions) -> Self {
        let analysis = Analysis::new(catalog);
        let mut tables = Vec::new();
        let mut used_by: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
        for relation in catalog
            .relations
            .iter()
            .filter(|r| r.checked && r.is_table())
        {
            let columns = catalog
                .columns
                .get(&relation.oid)
                .map_or(&[][..], Vec::as_slice);
            let policies: Vec<PolicyView<'_>> = catalog
                .policies
                .iter()
                .filter(|p| p.table_oid == relation.oid)
                .map(|policy| PolicyView {
                    policy,
                    using: policy
                        .using
                        .as_deref()
                        .map(|sql| analysis.expr(sql, relation, columns)),
                    check: policy
                        .check
                        .as_deref()
                        .map(|sql| analysis.expr(sql, relation, columns)),
                })
                .collect();
            let mut owner_columns: BTreeSet<String> = policies
                .iter()
                .flat_map(|p| p.clauses().flat_map(|c| c.owner_columns.iter().cloned()))
                .collect();
            for column in columns {
                if let Some(default) = &column.default {
                    let facts = analysis.expr(default, relation, columns);
                    for f in analysis.reachable(facts.functions.iter().copied()) {
                        used_by.entry(f).or_default().insert(format!(
                            "the default of column {}.{}",
                            relation.qualified(),
                            column.name
                        ));
                    }
                    if analysis.is_caller_id(default) {
                        owner_columns.insert(column.name.clone());
                    }
                }
            }
            for p in &policies {
                let roots = p.clauses().flat_map(|c| c.functions.iter().copied());
                for f in analysis.reachable(roots) {
                    used_by.entry(f).or_default().insert(p.object(relation));
                }
            }
            tables.push(TableView {
                relation,
                columns,
                policies,
                owner_columns,
            });
        }
        Self {
            catalog,
            options,
            analysis,
            tables,
            used_by,
        }
    }

    /// Exposed roles that exist.
    pub(crate) fn exposed(&self) -> impl Iterator<Item = &'c str> {
        let catalog = self.catalog;
        self.options
            .exposed_roles
            .iter()
            .filter(move |r| catalog.roles.contains_key(*r))
            .map(String::as_str)
    }

    pub(crate) fn relation(&self, oid: i64) -> Option<&'c Relation> {
        self.catalog.relations.iter().find(|r| r.oid == oid)
    }
}

pub(crate) fn finding(
    rule: &'static str,
    level: Level,
    object: impl Into<String>,
    why: impl Into<String>,
    fix: impl Into<String>,
) -> Finding {
    Finding {
        rule,
        level,
        object: object.into(),
        why: why.into(),
        fix: fix.into(),
        fix_sql: None,
    }
}

/// An identifier as SQL: quoted unless it is a plain lowercase name.
pub(crate) fn quote_ident(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// `schema.name`, each part quoted as needed.
pub(crate) fn qualified_sql(schema: &str, name: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(name))
}

/// `a`, `a and b`, `a, b and c`.
pub(crate) fn and_list<S: AsRef<str>>(items: &[S]) -> String {
    match items {
        [] => String::new(),
        [one] => one.as_ref().to_owned(),
        [init @ .., last] => format!(
            "{} and {}",
            init.iter()
                .map(AsRef::as_ref)
                .collect::<Vec<_>>()
                .join(", "),
            last.as_ref()
        ),
    }
}

/// Runs every rule.
pub(crate) fn run(catalog: &Catalog, options: &LintOptions) -> Report {
    let ctx = Context::new(catalog, options);
    let mut findings = Vec::new();
    roles::check(&ctx, &mut findings);
    tables::check(&ctx, &mut findings);
    policies::check(&ctx, &mut findings);
    functions::check(&ctx, &mut findings);
    views::check(&ctx, &mut findings);
    Report::new(findings)
}
