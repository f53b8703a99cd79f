-- The app's permissions per role, from supabase/supabase (Apache-2.0)
-- examples/slack-clone/nextjs-slack-clone/supabase/seed.sql at commit
-- 282be037f13f7c943d973d2273d998d837e0ff9d (its first statement; the demo user, channels and
-- messages that follow it need Supabase's auth.users and are left out).
insert into public.role_permissions (role, permission)
values
    ('admin', 'channels.delete'),
    ('admin', 'messages.delete'),
    ('moderator', 'messages.delete');
