//! Shapes met on a ported chat app (chatbot-ui): a `sharing <> 'private'` read policy whose
//! column defaults to the one value it refuses (a derived seed row must take another value, or
//! the branch is never exercised), and an integer column the update cells change (a changed
//! value must stay an integer: `4097.0` is refused with 22P02, lost access on a correct schema).

const MIGRATION: &str = "\
create table public.chats (
  id uuid primary key default gen_random_uuid(),
  user_id text not null default public.requesting_user_id(),
  sharing text not null default 'private',
  context_length integer not null,
  name text not null
);
alter table public.chats enable row level security;
grant select, insert, update, delete on public.chats to authenticated;
create policy own_chats on public.chats to authenticated
  using (user_id = (select public.requesting_user_id()))
  with check (user_id = (select public.requesting_user_id()));
create policy shared_chats on public.chats for select to authenticated
  using (sharing <> 'private');
";

const SPEC: &str = r#"
migrations = "migrations"

[actors.ada]
[actors.ben]

[tables.chats]
owner = "user_id"
payload = { context_length = 4096, name = "Chat" }
select = ["owner", "shared"]
insert = "owner"
update = "owner"
delete = "owner"

[tables.chats.predicates]
shared = "t.sharing <> 'private' and $2 = 'authenticated'"
"#;

#[tokio::test]
async fn a_not_equal_branch_is_exercised_and_integer_updates_stay_integers() {
    let outcome = crate::support::check_schema(MIGRATION, SPEC).await;
    assert!(outcome.leaks().is_empty(), "{:?}", outcome.leaks());
    assert!(
        outcome.lost_access().is_empty(),
        "{:?}",
        outcome.lost_access()
    );
    let coverage = outcome.coverage().unwrap();
    let untested: Vec<String> = coverage.unexercised().into_iter().map(|u| u.what).collect();
    assert!(untested.is_empty(), "{untested:?}");
    assert_eq!(outcome.exit_code(None), 0);
}
