-- Hand-broken: any member of the project may delete its tasks (the spec keeps that for the
-- project's owners: `delete = "member:owner"`).
drop policy tasks_delete on public.tasks;
create policy tasks_delete on public.tasks for delete to authenticated
  using (public.project_role(project_id) is not null);
