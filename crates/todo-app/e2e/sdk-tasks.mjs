// The official `@insforge/sdk`, unchanged, on a team's own schema: examples/team-workspaces'
// `tasks`, shared through `project_members`, as two members (an owner and a member) and a
// non-member. Run by `tests/e2e/main.rs` against the app serving the example's database.
//
// Env: TODO_APP_URL, TASKS_PROJECT (a project Ada owns, Ben is a member of),
// TASKS_OTHER_PROJECT (a project of Cy's), TOKEN_ADA / TOKEN_BEN / TOKEN_CY and ADA_ID / BEN_ID.
// The last line printed is `E2E_RESULT [...]`: the project's tasks at the end, as Ada reads them.

import assert from 'node:assert/strict';

import { createClient } from '@insforge/sdk';

function requiredEnv(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

const BASE = requiredEnv('TODO_APP_URL');
const PROJECT = requiredEnv('TASKS_PROJECT');
const OTHER_PROJECT = requiredEnv('TASKS_OTHER_PROJECT');
const ADA_ID = requiredEnv('ADA_ID');
const BEN_ID = requiredEnv('BEN_ID');

const tasksAs = (token) =>
  createClient({ baseUrl: BASE, accessToken: requiredEnv(token), retryCount: 0, timeout: 15_000 })
    .database.from('tasks');

function ok(result, what) {
  assert.equal(result.error, null, `${what}: ${JSON.stringify(result.error)}`);
  return result.data;
}

async function main() {
  const ada = () => tasksAs('TOKEN_ADA');
  const ben = () => tasksAs('TOKEN_BEN');
  const cy = () => tasksAs('TOKEN_CY');

  // Both members add tasks to the shared project; `created_by` defaults to the caller.
  const [adaTask] = ok(
    await ada().insert({ project_id: PROJECT, title: 'Ada: plan' }).select(),
    'ada inserts',
  );
  assert.equal(adaTask.created_by, ADA_ID);
  assert.equal(adaTask.done, false);
  const [benTask] = ok(
    await ben().insert({ project_id: PROJECT, title: 'Ben: build' }).select('id,created_by,title'),
    'ben inserts',
  );
  assert.equal(benTask.created_by, BEN_ID);

  // Members read each other's tasks, filtered and ordered as the SDK sends it.
  const seenByBen = ok(
    await ben().select('title').eq('project_id', PROJECT).order('title'),
    'ben reads',
  );
  assert.deepEqual(seenByBen.map((t) => t.title), ['Ada: plan', 'Ben: build']);
  const counted = await ada().select('*', { count: 'exact', head: true });
  assert.equal(counted.error, null, JSON.stringify(counted.error));
  assert.equal(counted.count, 2);

  // A member updates a teammate's task; moving it to a project they are not in is refused.
  const [done] = ok(
    await ben().update({ done: true }).eq('id', adaTask.id).select('id,done'),
    'ben updates',
  );
  assert.equal(done.done, true);
  const moved = await ben().update({ project_id: OTHER_PROJECT }).eq('id', adaTask.id).select();
  assert.equal(moved.status, 403, JSON.stringify(moved));
  assert.equal(moved.error?.code, '42501');

  // Only owners delete: Ben's delete matches nothing (RLS hides the row from DELETE).
  const benDelete = ok(await ben().delete().eq('id', adaTask.id).select('id'), 'ben deletes');
  assert.deepEqual(benDelete, []);

  // A non-member sees nothing, adds nothing, changes nothing.
  assert.deepEqual(ok(await cy().select('id'), 'cy reads'), []);
  const intrusion = await cy().insert({ project_id: PROJECT, title: 'Cy: intrusion' }).select();
  assert.equal(intrusion.status, 403, JSON.stringify(intrusion));
  assert.equal(intrusion.error?.code, '42501');
  assert.deepEqual(
    ok(await cy().update({ title: 'Cy was here' }).eq('id', benTask.id).select('id'), 'cy updates'),
    [],
  );
  assert.deepEqual(ok(await cy().delete().eq('project_id', PROJECT).select('id'), 'cy deletes'), []);

  // The owner deletes a member's task.
  const adaDelete = ok(await ada().delete().eq('id', benTask.id).select('title'), 'ada deletes');
  assert.deepEqual(adaDelete, [{ title: 'Ben: build' }]);

  const rows = ok(await ada().select('title,done,created_by,project_id').order('title'), 'final');
  assert.deepEqual(rows, [
    { title: 'Ada: plan', done: true, created_by: ADA_ID, project_id: PROJECT },
  ]);
  console.log(`E2E_RESULT ${JSON.stringify(rows)}`);
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
