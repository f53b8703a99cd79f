-- requesting_user_id(), same answers, written so Postgres can inline it into every policy.
--
-- V2 fixed the function's search_path with `SET search_path = ''`. On PostgreSQL a SQL
-- function with a SET clause is never inlined: each statement then calls it through the
-- function manager, saving and restoring the setting, and parses and plans its body again.
-- Under 1M rows that one call cost more than the index scan it feeds (docs/benchmarks).
--
-- CREATE OR REPLACE without a SET clause removes V2's. Every name is schema-qualified
-- instead — the functions, the jsonb type and the `->>` operator (`OPERATOR(pg_catalog.->>)`)
-- — so a caller's search_path still cannot shadow anything, and the planner inlines the body. (`nullif` is syntax; its
-- `=` on text is pg_catalog's, which is searched first unless a session lists pg_catalog
-- after its own schemas on purpose.)
--
-- The '' guard still comes BEFORE the cast: a pooled connection reads the claims back as ''
-- after a transaction that set them, and `''::jsonb` would raise instead of meaning "nobody".
-- Policies keep calling it as `(select public.requesting_user_id())`: once per statement.
CREATE OR REPLACE FUNCTION public.requesting_user_id() RETURNS text
  LANGUAGE sql STABLE PARALLEL SAFE
  AS $$
    SELECT nullif(
      nullif(pg_catalog.current_setting('request.jwt.claims', true), '')::pg_catalog.jsonb
        OPERATOR(pg_catalog.->>) 'sub',
      ''
    )
  $$;
