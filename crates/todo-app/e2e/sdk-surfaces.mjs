// The official `@insforge/sdk`, unchanged, on examples/team-workspaces through the surfaces
// beyond CRUD: `.rpc()` (the example's own `project_role` function), `.upsert()`, embedded
// selects and `.or()`, as two members (Ada owns the project, Ben is a member) and a non-member
// (Cy). Run by `tests/e2e/main.rs` against the app serving the example's database.
//
// Env: TODO_APP_URL, TASKS_PROJECT (Ada's, Ben is a member), TOKEN_ADA / TOKEN_BEN / TOKEN_CY,
// ADA_ID / BEN_ID. The last line printed is `E2E_RESULT {...}`: what each user saw.

import assert from 'node:assert/strict';

import { createClient } from '@insforge/sdk';

function requiredEnv(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

const BASE = requiredEnv('TODO_APP_URL');
const PROJECT = requiredEnv('TASKS_PROJECT');
const ADA_ID = requiredEnv('ADA_ID');
const BEN_ID = requiredEnv('BEN_ID');

const dbAs = (token) =>
  createClient({ baseUrl: BASE, accessToken: requiredEnv(token), retryCount: 0, timeout: 15_000 })
    .database;

function ok(result, what) {
  assert.equal(result.error, null, `${what}: ${JSON.stringify(result.error)}`);
  return result.data;
}

async function main() {
  const ada = dbAs('TOKEN_ADA');
  const ben = dbAs('TOKEN_BEN');
  const cy = dbAs('TOKEN_CY');

  // .rpc(): a scalar function, run as the caller.
  assert.equal(ok(await ada.rpc('project_role', { project: PROJECT }), 'ada rpc'), 'owner');
  assert.equal(ok(await ben.rpc('project_role', { project: PROJECT }), 'ben rpc'), 'member');
  assert.equal(ok(await cy.rpc('project_role', { project: PROJECT }), 'cy rpc'), null);
  const unknown = await ada.rpc('no_such_function', { project: PROJECT });
  assert.equal(unknown.status, 404, JSON.stringify(unknown));
  assert.equal(unknown.error?.code, 'PGRST202');

  // .upsert(): insert, then merge onto one's own row; onto someone else's row: refused.
  const [created] = ok(
    await ada.from('profiles').upsert({ user_id: ADA_ID, display_name: 'Ada' }).select(),
    'ada upserts',
  );
  assert.equal(created.display_name, 'Ada');
  const merged = await ada.from('profiles').upsert({ user_id: ADA_ID, display_name: 'Ada L.' }).select('display_name');
  assert.equal(merged.status, 200, JSON.stringify(merged));
  assert.deepEqual(merged.data, [{ display_name: 'Ada L.' }]);
  const takeover = await ben.from('profiles').upsert({ user_id: ADA_ID, display_name: 'Ben was here' }).select();
  assert.equal(takeover.status, 403, JSON.stringify(takeover));
  assert.equal(takeover.error?.code, '42501');
  ok(await ben.from('profiles').upsert({ user_id: BEN_ID, display_name: 'Ben' }), 'ben upserts');

  // Tasks to read back.
  ok(
    await ada.from('tasks').insert([
      { project_id: PROJECT, title: 'plan', done: false },
      { project_id: PROJECT, title: 'build', done: true },
      { project_id: PROJECT, title: 'ship', done: false },
    ]),
    'ada inserts',
  );

  // Embedded selects, both ways; RLS applies to the embedded table.
  const projects = ok(
    await ben.from('projects').select('name,tasks(title)').order('name'),
    'ben embeds tasks',
  );
  assert.equal(projects.length, 1);
  assert.deepEqual(projects[0].tasks.map((t) => t.title).sort(), ['build', 'plan', 'ship']);
  const withProject = ok(
    await ben.from('tasks').select('title,project:projects(name)').eq('title', 'plan'),
    'ben embeds project',
  );
  assert.deepEqual(withProject, [{ title: 'plan', project: { name: 'Shared' } }]);
  assert.deepEqual(ok(await cy.from('projects').select('name,tasks(title)'), 'cy embeds'), []);

  // .or(), with a nested and(), as the SDK writes it.
  const either = ok(
    await ben.from('tasks').select('title').or('title.eq.plan,and(done.is.true,title.like.b*)').order('title'),
    'ben or',
  );
  assert.deepEqual(either.map((t) => t.title), ['build', 'plan']);
  assert.deepEqual(ok(await cy.from('tasks').select('title').or('title.eq.plan,done.is.true'), 'cy or'), []);

  const profiles = ok(await cy.from('profiles').select('user_id,display_name').order('display_name'), 'profiles');
  const result = { profiles, ben_projects: projects.length, either: either.map((t) => t.title) };
  console.log(`E2E_RESULT ${JSON.stringify(result)}`);
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
