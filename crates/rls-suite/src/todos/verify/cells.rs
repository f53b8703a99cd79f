//! The cells of verify's live matrix: every actor × every operation, what actually happened to
//! whose rows, and whether that is a leak (someone else's rows) or lost access (one's own rows
//! refused). Private to `verify`: without a database, seeding and observing go through the API
//! as the synthetic users themselves, which the engine's observers cannot do yet; what leaves
//! this module is the engine's [`TableMatrix`] with engine [`Verdict`]s.

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::engine::model::Verdict;
use crate::engine::report::{SpecCell, TableMatrix};

/// Who acts. The last two exist only over HTTP: a database never sees a rejected token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Actor {
    /// User A (fixture `alice`, an old `user_2…` id).
    UserA,
    /// User B (fixture `bob`, a new `user_3…` id).
    UserB,
    /// Signed in as `authenticated`, but no claims at all.
    NoClaims,
    /// The `anon` role (over HTTP: no token).
    Anon,
    /// User A's token, expired by a second.
    Expired,
    /// User A's claims signed with another secret.
    ForeignSecret,
}

impl Actor {
    pub const HTTP: [Actor; 6] = [
        Actor::UserA,
        Actor::UserB,
        Actor::NoClaims,
        Actor::Anon,
        Actor::Expired,
        Actor::ForeignSecret,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Actor::UserA => "user A",
            Actor::UserB => "user B",
            Actor::NoClaims => "no claims",
            Actor::Anon => "anon",
            Actor::Expired => "expired",
            Actor::ForeignSecret => "other secret",
        }
    }

    /// The owner whose rows this actor may touch (`None`: nobody's).
    pub fn own(self) -> Option<Owner> {
        match self {
            Actor::UserA => Some(Owner::A),
            Actor::UserB => Some(Owner::B),
            _ => None,
        }
    }

    /// Whose rows the "other's" operations aim at.
    pub fn victim(self) -> Owner {
        if self == Actor::UserA {
            Owner::B
        } else {
            Owner::A
        }
    }
}

/// Row owners the matrix tells apart: the two acting users, a bystander, and anyone else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Owner {
    A,
    B,
    /// A third user whose rows no operation aims at.
    Bystander,
    /// An id outside the fixtures (e.g. NULL, '' or a forged one).
    Unknown,
}

impl Owner {
    fn tag(self) -> &'static str {
        match self {
            Owner::A => "A",
            Owner::B => "B",
            Owner::Bystander => "M",
            Owner::Unknown => "?",
        }
    }
}

/// What an operation does. "own"/"other's" are relative to the actor; unfiltered ones have no
/// WHERE clause (PATCH/DELETE without a filter), where only the command's own policy applies.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    Select {
        target: String,
    },
    InsertOwn,
    InsertAsOther,
    UpdateOwn,
    UpdateOthers,
    UpdateOwnToOther,
    UpdateUnfiltered,
    /// Every row the caller may update handed to the victim, no WHERE: only the UPDATE
    /// policy's check stands in the way (a WHERE would add the SELECT policy).
    UpdateUnfilteredToOther,
    DeleteOwn,
    DeleteOthers,
    DeleteUnfiltered,
}

impl Op {
    /// The operations on `todos`, plus a select on every extra target (views and the like).
    pub fn all(extra_targets: &[String]) -> Vec<Op> {
        let mut ops = vec![Op::Select {
            target: "todos".into(),
        }];
        ops.extend(
            extra_targets
                .iter()
                .map(|t| Op::Select { target: t.clone() }),
        );
        ops.extend([
            Op::InsertOwn,
            Op::InsertAsOther,
            Op::UpdateOwn,
            Op::UpdateOthers,
            Op::UpdateOwnToOther,
            Op::UpdateUnfiltered,
            Op::UpdateUnfilteredToOther,
            Op::DeleteOwn,
            Op::DeleteOthers,
            Op::DeleteUnfiltered,
        ]);
        ops
    }

    pub fn label(&self) -> String {
        match self {
            Op::Select { target } => format!("select {target}"),
            Op::InsertOwn => "insert own".into(),
            Op::InsertAsOther => "insert as other".into(),
            Op::UpdateOwn => "update own".into(),
            Op::UpdateOthers => "update other's".into(),
            Op::UpdateOwnToOther => "update own → other's user_id".into(),
            Op::UpdateUnfiltered => "update, no filter".into(),
            Op::UpdateUnfilteredToOther => "update, no filter → other's user_id".into(),
            Op::DeleteOwn => "delete own".into(),
            Op::DeleteOthers => "delete other's".into(),
            Op::DeleteUnfiltered => "delete, no filter".into(),
        }
    }

    /// Operations on one's "own" row need an own row.
    pub fn needs_own_row(&self) -> bool {
        matches!(self, Op::UpdateOwn | Op::UpdateOwnToOther | Op::DeleteOwn)
    }

    /// Handing rows over needs someone who owns rows.
    pub fn needs_owner(&self) -> bool {
        self.needs_own_row() || matches!(self, Op::UpdateUnfilteredToOther)
    }
}

/// A todo as an observer (superuser, or each owner through the API) saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub id: Uuid,
    pub owner: Owner,
    pub title: String,
    pub is_complete: bool,
}

/// What one operation did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observation {
    /// Owners of the rows a select returned.
    pub seen: Vec<Owner>,
    pub inserted: Vec<Owner>,
    /// (owner before, owner after) for each changed row.
    pub updated: Vec<(Owner, Owner)>,
    pub deleted: Vec<Owner>,
    /// How it was refused: a SQLSTATE (`42501`) or an HTTP status with code (`401`, `403 42501`).
    pub refused: Option<String>,
    /// Not applicable to this actor (e.g. "update own" for someone who owns nothing).
    pub not_applicable: bool,
}

impl Observation {
    pub fn not_applicable() -> Self {
        Self {
            not_applicable: true,
            ..Default::default()
        }
    }

    /// Compares the rows before and after a write.
    pub fn from_diff(before: &[Row], after: &[Row]) -> Self {
        let index = |rows: &[Row]| {
            rows.iter()
                .map(|r| (r.id, r.clone()))
                .collect::<BTreeMap<_, _>>()
        };
        let (b, a) = (index(before), index(after));
        let mut o = Observation::default();
        for (id, row) in &a {
            match b.get(id) {
                None => o.inserted.push(row.owner),
                Some(old) if old != row => o.updated.push((old.owner, row.owner)),
                Some(_) => {}
            }
        }
        o.deleted = b
            .iter()
            .filter(|(id, _)| !a.contains_key(id))
            .map(|(_, r)| r.owner)
            .collect();
        o.inserted.sort();
        o.updated.sort();
        o.deleted.sort();
        o
    }

    fn counts(owners: impl Iterator<Item = Owner>) -> String {
        let mut by: BTreeMap<Owner, usize> = BTreeMap::new();
        for o in owners {
            *by.entry(o).or_default() += 1;
        }
        by.iter()
            .map(|(o, n)| format!("{}{n}", o.tag()))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// A short, stable description for the snapshot table.
    pub fn describe(&self, op: &Op) -> String {
        if self.not_applicable {
            return "n/a".into();
        }
        if let Some(code) = &self.refused {
            return format!("refused {code}");
        }
        let mut parts = Vec::new();
        if matches!(op, Op::Select { .. }) {
            parts.push(if self.seen.is_empty() {
                "sees none".into()
            } else {
                format!("sees {}", Self::counts(self.seen.iter().copied()))
            });
        }
        if !self.inserted.is_empty() {
            parts.push(format!(
                "inserts {}",
                Self::counts(self.inserted.iter().copied())
            ));
        }
        let mut moves: BTreeMap<(Owner, Owner), usize> = BTreeMap::new();
        for (b, a) in self.updated.iter().filter(|(b, a)| b != a) {
            *moves.entry((*b, *a)).or_default() += 1;
        }
        let moved: Vec<String> = moves
            .iter()
            .map(|((b, a), n)| format!("{}→{}{n}", b.tag(), a.tag()))
            .collect();
        let kept = Self::counts(self.updated.iter().filter(|(b, a)| b == a).map(|(b, _)| *b));
        if !kept.is_empty() {
            parts.push(format!("updates {kept}"));
        }
        if !moved.is_empty() {
            parts.push(format!("moves {}", moved.join(" ")));
        }
        if !self.deleted.is_empty() {
            parts.push(format!(
                "deletes {}",
                Self::counts(self.deleted.iter().copied())
            ));
        }
        if parts.is_empty() {
            "0 rows".into()
        } else {
            parts.join(", ")
        }
    }
}

/// Judges one observation. `seeded_own` is how many rows the actor owned before.
pub fn judge(actor: Actor, op: &Op, o: &Observation, seeded_own: usize) -> Verdict {
    if o.not_applicable {
        return Verdict::Ok;
    }
    let own = actor.own();
    let foreign = |owner: &Owner| Some(*owner) != own;
    if let Some(owner) = o.seen.iter().find(|x| foreign(x)) {
        return Verdict::Leak(format!("{} sees a row of {}", actor.label(), owner.tag()));
    }
    if let Some(owner) = o.inserted.iter().find(|x| foreign(x)) {
        return Verdict::Leak(format!(
            "{} inserts a row owned by {}",
            actor.label(),
            owner.tag()
        ));
    }
    if let Some((b, a)) = o.updated.iter().find(|(b, a)| foreign(b) || foreign(a)) {
        return Verdict::Leak(if foreign(b) {
            format!("{} updates a row of {}", actor.label(), b.tag())
        } else {
            format!("{} hands their row to {}", actor.label(), a.tag())
        });
    }
    if let Some(owner) = o.deleted.iter().find(|x| foreign(x)) {
        return Verdict::Leak(format!(
            "{} deletes a row of {}",
            actor.label(),
            owner.tag()
        ));
    }
    // Selecting must never fail in the database: nobody's rows is an empty answer, not an
    // error. (A 401 is the API turning a token away before the database is asked.)
    if let (Op::Select { target }, Some(code)) = (op, &o.refused)
        && target == "todos"
        && !code.starts_with("401")
    {
        return Verdict::LostAccess(format!(
            "{} gets an error ({code}) instead of a result",
            actor.label()
        ));
    }
    let Some(_) = own else { return Verdict::Ok };
    let lost = |what: &str| Verdict::LostAccess(format!("{} cannot {what}", actor.label()));
    match op {
        Op::Select { target } if target == "todos" && o.seen.len() != seeded_own => {
            lost("see all of their own rows")
        }
        Op::InsertOwn if o.inserted.len() != 1 => lost("insert a row of their own"),
        Op::UpdateOwn if o.updated.len() != 1 => lost("update their own row"),
        Op::UpdateUnfiltered if o.updated.len() != seeded_own => {
            lost("update all of their own rows")
        }
        Op::DeleteOwn if o.deleted.len() != 1 => lost("delete their own row"),
        Op::DeleteUnfiltered if o.deleted.len() != seeded_own => {
            lost("delete all of their own rows")
        }
        _ => Verdict::Ok,
    }
}

/// Fills a matrix cell by cell. `observe` runs one operation as one actor (from a fresh seed)
/// and reports what happened; `own_rows` is how many rows an actor owned before it. The matrix
/// is the engine's, named after `table`.
pub async fn build(
    table: &str,
    actors: Vec<Actor>,
    ops: Vec<Op>,
    own_rows: impl Fn(Actor) -> usize,
    mut observe: impl AsyncFnMut(Actor, &Op) -> Result<Observation, crate::engine::Error>,
) -> Result<TableMatrix, crate::engine::Error> {
    let mut cells = Vec::with_capacity(ops.len());
    for op in &ops {
        let mut row = Vec::with_capacity(actors.len());
        for &actor in &actors {
            let observation = observe(actor, op).await?;
            row.push(SpecCell {
                verdict: judge(actor, op, &observation, own_rows(actor)),
                text: observation.describe(op),
            });
        }
        cells.push(row);
    }
    Ok(TableMatrix {
        table: table.to_owned(),
        actors: actors.iter().map(|a| a.label().to_owned()).collect(),
        ops: ops.iter().map(Op::label).collect(),
        cells,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(owner: Owner, title: &str) -> Row {
        Row {
            id: Uuid::new_v4(),
            owner,
            title: title.into(),
            is_complete: false,
        }
    }

    #[test]
    fn a_diff_names_inserted_updated_moved_and_deleted_rows() {
        let before = vec![row(Owner::A, "a"), row(Owner::B, "b"), row(Owner::B, "b2")];
        let mut after = before.clone();
        after[0].title = "changed".into();
        after[1].owner = Owner::A;
        after.remove(2);
        after.push(row(Owner::A, "new"));
        let o = Observation::from_diff(&before, &after);
        assert_eq!(o.inserted, [Owner::A]);
        assert_eq!(o.updated, [(Owner::A, Owner::A), (Owner::B, Owner::A)]);
        assert_eq!(o.deleted, [Owner::B]);
        assert_eq!(
            o.describe(&Op::UpdateUnfiltered),
            "inserts A1, updates A1, moves B→A1, deletes B1"
        );
    }

    #[test]
    fn judging_tells_leaks_from_lost_access() {
        let moved = Observation {
            updated: vec![(Owner::A, Owner::B)],
            ..Default::default()
        };
        assert!(matches!(
            judge(Actor::UserA, &Op::UpdateOwnToOther, &moved, 2),
            Verdict::Leak(_)
        ));
        let none = Observation::default();
        assert!(matches!(
            judge(Actor::UserA, &Op::DeleteOwn, &none, 2),
            Verdict::LostAccess(_)
        ));
        assert_eq!(
            judge(Actor::UserA, &Op::DeleteOthers, &none, 2),
            Verdict::Ok
        );
        let seen = Observation {
            seen: vec![Owner::A],
            ..Default::default()
        };
        assert!(matches!(
            judge(
                Actor::Anon,
                &Op::Select {
                    target: "todos".into()
                },
                &seen,
                0
            ),
            Verdict::Leak(_)
        ));
        let refused = Observation {
            refused: Some("22P02".into()),
            ..Default::default()
        };
        assert!(matches!(
            judge(
                Actor::NoClaims,
                &Op::Select {
                    target: "todos".into()
                },
                &refused,
                0
            ),
            Verdict::LostAccess(_)
        ));
    }
}
