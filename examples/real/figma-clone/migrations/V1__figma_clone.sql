--
-- Ported from supabase/supabase (Apache-2.0), examples/realtime/flutter-figma-clone:
-- supabase/migrations/20240118161520_canvas.sql and 20240808072352_auth.sql, both at commit
-- 6462b3096f6d60ee0f2fc2accac43a124fe6112f, concatenated. The changes are listed in
-- README.md: user ids are Clerk ids (text), auth.uid() is public.requesting_user_id(), the
-- parts that need Supabase (auth.users and its sign-up trigger, realtime.messages policies)
-- are removed. Policies are otherwise unchanged.
--

-- 20240118161520_canvas.sql
create table canvas_objects (
    id uuid primary key default gen_random_uuid() not null,
    "object" jsonb not null,
    created_at timestamp with time zone default timezone('utc'::text, now()) not null
);

-- 20240808072352_auth.sql
create table public.profiles (
  id text primary key, -- Clerk user id (was: uuid references auth.users(id) on delete cascade)
  username text unique not null,
  created_at timestamp with time zone default timezone('utc'::text, now()) not null

  -- username should be 3 to 24 characters long containing alphabets, numbers and underscores
  constraint username_validation check (username ~* '^[A-Za-z0-9_]{3,24}$')
);

create table if not exists public.projects (
    id uuid primary key default gen_random_uuid(),
    name text not null default 'new project',
    created_at timestamp with time zone default timezone('utc'::text, now()) not null
);

create table if not exists public.project_members (
    profile_id text references public.profiles(id) on delete cascade not null,
    project_id uuid references public.projects(id) on delete cascade not null,
    created_at timestamp with time zone default timezone('utc' :: text, now()) not null,
    primary key (profile_id, project_id)
);

alter table public.canvas_objects
add column project_id uuid references public.projects(id) on delete cascade not null;

-- Returns true if the signed in user is a member of the project
create or replace function is_project_member(project_id uuid)
returns boolean as $$
  select exists(
    select 1
    from project_members
    where project_id = is_project_member.project_id and profile_id = public.requesting_user_id()
  );
$$ language sql security definer;

alter table public.profiles enable row level security;
create policy "Public profiles are viewable by everyone." on public.profiles for select using (true);

alter table public.projects enable row level security;
create policy "Users can view projects that they have joined" on public.projects for select using (is_project_member(id));

alter table public.project_members enable row level security;
create policy "Participants of the project can view other participants." on public.project_members for select using (is_project_member(project_id));
create policy "Participants of the project can insert new users." on public.project_members for insert with check (is_project_member(project_id));

alter table public.canvas_objects enable row level security;
create policy "Users can view canvas_objects of projects they are in." on public.canvas_objects for select using (is_project_member(project_id));
create policy "Users can insert canvas_objects of projects they are in." on public.canvas_objects for insert with check (is_project_member(project_id));
create policy "Users can update canvas_objects of projects they are in." on public.canvas_objects for update using (is_project_member(project_id)) with check (is_project_member(project_id));
create policy "Users can delete canvas_objects of projects they are in." on public.canvas_objects for delete using (is_project_member(project_id));

-- Creates a new project and inserts the caller as a participant
create or replace function create_new_project() returns uuid as $$
    declare
        new_project_id uuid;
    begin
        -- Create a new project
        insert into public.projects default values
        returning id into new_project_id;

        -- Insert the caller user into the new project
        insert into public.project_members (profile_id, project_id)
        values (public.requesting_user_id(), new_project_id);

        return new_project_id;
    end
$$ language plpgsql security definer;
