-- Hand-broken: three SECURITY DEFINER functions that any caller may execute, each the classic
-- hole. They run as their owner, past every policy of the tables they read or write.

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
