-- InsForge-flavoured roles and grants (facts.md §6), written to be harmless on a real
-- InsForge database: every object is created only when missing.
--
-- InsForge grants `anon` and `authenticated` full DML on every table in `public`, so Row
-- Level Security is the only thing between users. We reproduce that on purpose: a test
-- environment with tighter grants than production would hide a missing policy.

DO $roles$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'anon') THEN
    CREATE ROLE anon NOLOGIN NOINHERIT;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'authenticated') THEN
    CREATE ROLE authenticated NOLOGIN NOINHERIT;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'project_admin') THEN
    CREATE ROLE project_admin NOLOGIN NOINHERIT BYPASSRLS;
  END IF;
END
$roles$;

GRANT USAGE ON SCHEMA public TO anon, authenticated, project_admin;

GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO anon, authenticated;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO anon, authenticated;
GRANT ALL ON ALL TABLES IN SCHEMA public TO project_admin;
GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO project_admin;

ALTER DEFAULT PRIVILEGES IN SCHEMA public
  GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO anon, authenticated;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
  GRANT USAGE, SELECT ON SEQUENCES TO anon, authenticated;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
  GRANT ALL ON TABLES TO project_admin;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
  GRANT ALL ON SEQUENCES TO project_admin;

-- InsForge's claim helpers, added only where the database does not have them already.
-- Every reader guards the '' that a transaction-local setting leaves behind on a pooled
-- connection (facts.md §5) before it casts.
CREATE SCHEMA IF NOT EXISTS auth;
GRANT USAGE ON SCHEMA auth TO anon, authenticated, project_admin;

DO $helpers$
BEGIN
  IF to_regprocedure('auth.jwt()') IS NULL THEN
    CREATE FUNCTION auth.jwt() RETURNS jsonb
      LANGUAGE sql STABLE
      SET search_path = ''
      AS $fn$ SELECT nullif(current_setting('request.jwt.claims', true), '')::jsonb $fn$;
  END IF;
  IF to_regprocedure('auth.role()') IS NULL THEN
    CREATE FUNCTION auth.role() RETURNS text
      LANGUAGE sql STABLE
      SET search_path = ''
      AS $fn$ SELECT nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role' $fn$;
  END IF;
  IF to_regprocedure('auth.email()') IS NULL THEN
    CREATE FUNCTION auth.email() RETURNS text
      LANGUAGE sql STABLE
      SET search_path = ''
      AS $fn$ SELECT nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'email' $fn$;
  END IF;
END
$helpers$;
