-- Hand-broken: the UPDATE policy on projects checks only the new row (WITH CHECK), not which
-- row may be updated (USING true). An upsert (`Prefer: resolution=merge-duplicates`) whose body
-- names another user's project and the caller as its owner passes the INSERT check, conflicts,
-- and takes the project over.
drop policy projects_update on public.projects;
create policy projects_update on public.projects for update to authenticated
  using (true)
  with check (owner_id = (select public.requesting_user_id()));
