//! Clause operators: a policy's clauses rewritten whole, from the catalog's own text.

use harness::target::quote_ident;

use super::{Operator, PolicyRow};

/// The clause mutants of policy `p` on the qualified table `t`: `(operator, sql)`.
pub(super) fn mutants(p: &PolicyRow, t: &str) -> Vec<(Operator, String)> {
    let name = quote_ident(&p.name);
    let is_true = |e: &Option<String>| e.as_deref().map(str::trim) == Some("true");
    let mut out = Vec::new();
    if p.qual.is_some() && !is_true(&p.qual) {
        out.push((
            Operator::UsingTrue,
            format!("alter policy {name} on {t} using (true)"),
        ));
    }
    if p.check.is_some() && !is_true(&p.check) {
        out.push((
            Operator::CheckTrue,
            format!("alter policy {name} on {t} with check (true)"),
        ));
    }
    if let (Some(qual), Some(_), "w" | "*") = (&p.qual, &p.check, p.cmd.as_str()) {
        // Postgres then reuses USING as the check: the mutant is the policy as it would be
        // written without one (the expressions are the catalog's own, unchanged).
        let cmd = if p.cmd == "w" { "update" } else { "all" };
        out.push((
            Operator::DropCheck,
            format!(
                "drop policy {name} on {t}; create policy {name} on {t} as {} for {cmd} to {} using ({qual})",
                if p.permissive {
                    "permissive"
                } else {
                    "restrictive"
                },
                p.roles.join(", ")
            ),
        ));
    }
    out.push((Operator::DropPolicy, format!("drop policy {name} on {t}")));
    out
}
