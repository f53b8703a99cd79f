-- Hand-broken: five SECURITY DEFINER functions that callers may execute, each the classic
-- hole, and one that is fine (create_project). They run as their owner, past every policy of
-- the tables they read or write.

-- Every project, to anyone who asks (a dashboard helper that forgot its WHERE clause).
create function public.project_overview() returns table (id uuid, name text, owner_id text)
language sql stable security definer set search_path = ''
as $$ select p.id, p.name, p.owner_id from public.projects p $$;
grant execute on function public.project_overview() to anon, authenticated;

-- One task by id, whoever's project it is in.
create function public.get_task(task uuid) returns public.tasks
language sql stable security definer set search_path = ''
as $$ select t.* from public.tasks t where t.id = task $$;
grant execute on function public.get_task(uuid) to authenticated;

-- Renames any project: the caller's ownership is never asked.
create function public.rename_project(project uuid, new_name text) returns void
language sql volatile security definer set search_path = ''
as $$ update public.projects set name = new_name where id = project $$;
grant execute on function public.rename_project(uuid, text) to authenticated;

-- Joins any project: the spec's `creates` lets it add the caller's own rows, but this row is
-- in another user's project, which its members see.
create function public.join_project(project uuid) returns void
language sql volatile security definer set search_path = ''
as $$ insert into public.project_members (project_id, user_id, role)
      values (project, public.requesting_user_id(), 'member') $$;
grant execute on function public.join_project(uuid) to authenticated;

-- Not broken: makes a project and the caller's owner membership, rows only the caller sees.
create function public.create_project(project_name text) returns uuid
language plpgsql volatile security definer set search_path = ''
as $$
declare
  new_id uuid;
begin
  insert into public.projects (owner_id, name)
    values (public.requesting_user_id(), project_name) returning id into new_id;
  insert into public.project_members (project_id, user_id, role)
    values (new_id, public.requesting_user_id(), 'owner');
  return new_id;
end
$$;
revoke all on function public.create_project(text) from public;
grant execute on function public.create_project(text) to authenticated;

-- Every task, nested in a JSON document (a dashboard endpoint): rows inside a `jsonb` result
-- are rows returned all the same.
create function public.dashboard() returns jsonb
language sql stable security definer set search_path = ''
as $$ select jsonb_build_object('tasks', coalesce(jsonb_agg(to_jsonb(t)), '[]'::jsonb))
      from public.tasks t $$;
