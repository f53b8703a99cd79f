-- Team workspaces: projects shared through a membership table, tasks visible to a project's
-- members (only its owners delete them), and public profiles that only their owner writes.
-- Plain SQL, as pasted into InsForge's SQL editor; requesting_user_id() comes from the base.

create table public.profiles (
  user_id text primary key default public.requesting_user_id(),
  display_name text not null,
  created_at timestamptz not null default now()
);

create table public.projects (
  id uuid primary key default gen_random_uuid(),
  owner_id text not null default public.requesting_user_id(),
  name text not null,
  created_at timestamptz not null default now()
);
create index projects_owner_id_idx on public.projects (owner_id);

create table public.project_members (
  project_id uuid not null references public.projects (id) on delete cascade,
  user_id text not null,
  role text not null check (role in ('owner', 'member')),
  primary key (project_id, user_id)
);
create index project_members_user_id_idx on public.project_members (user_id);

create table public.tasks (
  id uuid primary key default gen_random_uuid(),
  project_id uuid not null references public.projects (id) on delete cascade,
  created_by text not null default public.requesting_user_id(),
  title text not null,
  done boolean not null default false
);
create index tasks_project_id_idx on public.tasks (project_id);
create index tasks_created_by_idx on public.tasks (created_by);

-- The caller's role in a project (NULL: not a member). SECURITY DEFINER so that policies on
-- project_members can ask about project_members without recursing into their own policies.
create function public.project_role(project uuid) returns text
language sql stable security definer set search_path = ''
as $$
  select m.role from public.project_members m
  where m.project_id = project and m.user_id = (select public.requesting_user_id())
$$;
revoke all on function public.project_role(uuid) from public;
grant execute on function public.project_role(uuid) to authenticated;

alter table public.profiles enable row level security;
alter table public.profiles force row level security;
create policy profiles_select on public.profiles for select to anon, authenticated using (true);
create policy profiles_insert on public.profiles for insert to authenticated
  with check (user_id = (select public.requesting_user_id()));
create policy profiles_update on public.profiles for update to authenticated
  using (user_id = (select public.requesting_user_id()))
  with check (user_id = (select public.requesting_user_id()));
create policy profiles_delete on public.profiles for delete to authenticated
  using (user_id = (select public.requesting_user_id()));

alter table public.projects enable row level security;
alter table public.projects force row level security;
create policy projects_select on public.projects for select to authenticated
  using (owner_id = (select public.requesting_user_id()) or public.project_role(id) is not null);
create policy projects_insert on public.projects for insert to authenticated
  with check (owner_id = (select public.requesting_user_id()));
create policy projects_update on public.projects for update to authenticated
  using (owner_id = (select public.requesting_user_id()))
  with check (owner_id = (select public.requesting_user_id()));
create policy projects_delete on public.projects for delete to authenticated
  using (owner_id = (select public.requesting_user_id()));

alter table public.project_members enable row level security;
alter table public.project_members force row level security;
create policy project_members_select on public.project_members for select to authenticated
  using (user_id = (select public.requesting_user_id()) or public.project_role(project_id) is not null);
create policy project_members_insert on public.project_members for insert to authenticated
  with check (public.project_role(project_id) = 'owner');
create policy project_members_delete on public.project_members for delete to authenticated
  using (user_id = (select public.requesting_user_id()) or public.project_role(project_id) = 'owner');

alter table public.tasks enable row level security;
alter table public.tasks force row level security;
create policy tasks_select on public.tasks for select to authenticated
  using (public.project_role(project_id) is not null);
create policy tasks_insert on public.tasks for insert to authenticated
  with check (public.project_role(project_id) is not null);
create policy tasks_update on public.tasks for update to authenticated
  using (public.project_role(project_id) is not null)
  with check (public.project_role(project_id) is not null);
create policy tasks_delete on public.tasks for delete to authenticated
  using (public.project_role(project_id) = 'owner');
