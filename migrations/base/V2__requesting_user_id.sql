-- The caller's Clerk user id (the token's `sub`), or NULL when the request carries none.
--
-- Clerk ids are strings such as `user_2GIpXOEpVyJw51rkZn9Kmnc6Sxr`, so InsForge's
-- uuid-casting `auth.uid()` cannot be used. The '' guard comes BEFORE the cast: after a
-- transaction that set the claims with set_config(…, true), the same pooled connection reads
-- them back as '' (not NULL), and `''::jsonb` would raise an error instead of meaning
-- "nobody". An empty `sub` also means nobody.
--
-- Policies call it as `(select public.requesting_user_id())` so Postgres evaluates it once
-- per statement, and the fixed search_path keeps a caller's objects from shadowing anything.
CREATE OR REPLACE FUNCTION public.requesting_user_id() RETURNS text
  LANGUAGE sql STABLE PARALLEL SAFE
  SET search_path = ''
  AS $$
    SELECT nullif(
      nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub',
      ''
    )
  $$;

COMMENT ON FUNCTION public.requesting_user_id() IS
  'Clerk user id (JWT sub) of the current request, NULL when there is none.';

GRANT EXECUTE ON FUNCTION public.requesting_user_id() TO anon, authenticated, project_admin;
