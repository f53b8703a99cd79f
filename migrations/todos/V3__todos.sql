-- The sample app's table: each todo belongs to one Clerk user, and RLS alone keeps it theirs.
--
-- `user_id` defaults to the caller, but a client may send any value: only the INSERT and
-- UPDATE `WITH CHECK` clauses stop a user from writing a row as someone else.
CREATE TABLE public.todos (
  id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id      text        NOT NULL DEFAULT public.requesting_user_id(),
  title        text        NOT NULL,
  is_complete  boolean     NOT NULL DEFAULT false,
  created_at   timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT todos_title_length CHECK (char_length(title) BETWEEN 1 AND 500)
);

COMMENT ON TABLE public.todos IS 'Per-user todos; rows are visible only to their owner (RLS).';

-- Serves "my todos, newest first" and every policy's user_id comparison.
CREATE INDEX todos_user_id_created_at_idx ON public.todos (user_id, created_at DESC);

-- FORCE: the table owner is subject to the policies too, so a misconfigured app that
-- connects as the owner still cannot read across users.
ALTER TABLE public.todos ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.todos FORCE ROW LEVEL SECURITY;

-- As InsForge does for every table in public: RLS, not grants, is the barrier.
GRANT SELECT, INSERT, UPDATE, DELETE ON public.todos TO anon, authenticated;
GRANT ALL ON public.todos TO project_admin;

-- One policy per command, all for `authenticated`; `anon` has none, so it sees and
-- changes nothing.
CREATE POLICY todos_select_own ON public.todos
  FOR SELECT TO authenticated
  USING (user_id = (SELECT public.requesting_user_id()));

CREATE POLICY todos_insert_own ON public.todos
  FOR INSERT TO authenticated
  WITH CHECK (user_id = (SELECT public.requesting_user_id()));

-- USING picks the rows a user may touch; WITH CHECK stops them handing a row to someone else.
CREATE POLICY todos_update_own ON public.todos
  FOR UPDATE TO authenticated
  USING (user_id = (SELECT public.requesting_user_id()))
  WITH CHECK (user_id = (SELECT public.requesting_user_id()));

CREATE POLICY todos_delete_own ON public.todos
  FOR DELETE TO authenticated
  USING (user_id = (SELECT public.requesting_user_id()));
