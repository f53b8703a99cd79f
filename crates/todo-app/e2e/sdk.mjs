// InsForge JS SDK compatibility: the official `@insforge/sdk` (createClient + database.from)
// does CRUD against the todo-app unchanged, as it would against InsForge itself.
//
// Run by the Rust test `tests/e2e/main.rs` with a fresh database and minted tokens. By hand:
//   TODO_APP_URL=http://127.0.0.1:7130 TODO_APP_TOKEN=$(cargo xtask token --user user_2…) \
//   TODO_APP_USER_ID=user_2… TODO_APP_OTHER_TOKEN=$(cargo xtask token --user user_3…) node sdk.mjs
// The last line printed is `E2E_RESULT [...]`: the caller's rows at the end, as the SDK read them.

import assert from 'node:assert/strict';

import { createClient } from '@insforge/sdk';

const BASE = requiredEnv('TODO_APP_URL');
const TOKEN = requiredEnv('TODO_APP_TOKEN');
const USER_ID = requiredEnv('TODO_APP_USER_ID');
const OTHER_TOKEN = requiredEnv('TODO_APP_OTHER_TOKEN');

function requiredEnv(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

// `accessToken` is the SDK's name for a token from an outside auth provider (Clerk's
// `insforge` template here); `edgeFunctionToken` is its deprecated alias. No retries: a
// failure should show at once, not after back-off.
const client = (accessToken) =>
  createClient({ baseUrl: BASE, accessToken, retryCount: 0, timeout: 15_000 });

/** Unwraps `{ data, error }`, failing with the API's error when there is one. */
function ok(result, what) {
  assert.equal(result.error, null, `${what}: ${JSON.stringify(result.error)}`);
  return result.data;
}

async function main() {
  const db = client(TOKEN).database;
  const other = client(OTHER_TOKEN).database;
  const todos = () => db.from('todos');

  // Insert: one object, then several (same keys, as PostgREST requires), returning the rows.
  const [first] = ok(await todos().insert({ title: 'SDK: first' }).select(), 'insert one');
  assert.equal(first.title, 'SDK: first');
  assert.equal(first.user_id, USER_ID, 'user_id defaults to the token sub');
  assert.equal(first.is_complete, false);
  assert.match(first.id, /^[0-9a-f-]{36}$/);
  const more = ok(
    await todos()
      .insert([
        { title: 'SDK: second', is_complete: false },
        { title: 'SDK: third', is_complete: true },
      ])
      .select('id,title,is_complete'),
    'insert many',
  );
  assert.deepEqual(
    more.map(({ title, is_complete }) => ({ title, is_complete })),
    [
      { title: 'SDK: second', is_complete: false },
      { title: 'SDK: third', is_complete: true },
    ],
  );
  assert.deepEqual(Object.keys(more[0]).sort(), ['id', 'is_complete', 'title']);
  // Without .select() the insert returns no rows: InsForge answers `[]` where PostgREST
  // sends an empty body, and the app does the same.
  const minimal = await todos().insert({ title: 'SDK: fourth' });
  assert.equal(minimal.error, null, JSON.stringify(minimal.error));
  assert.equal(minimal.status, 201);
  assert.deepEqual(minimal.data, []);

  // Select with filters and order.
  const open = ok(
    await todos().select('title,is_complete').eq('is_complete', false).order('title', { ascending: false }),
    'select open',
  );
  assert.deepEqual(
    open.map((row) => row.title),
    ['SDK: second', 'SDK: fourth', 'SDK: first'],
  );
  const newest = ok(
    await todos().select('title').order('created_at', { ascending: false }).order('title').limit(1),
    'newest',
  );
  assert.deepEqual(newest, [{ title: 'SDK: fourth' }]);
  const picked = ok(
    await todos()
      .select('title')
      .in('id', [first.id, more[1].id])
      .neq('title', 'nothing')
      .ilike('title', 'sdk:%')
      .order('title'),
    'in + neq + ilike',
  );
  assert.deepEqual(picked, [{ title: 'SDK: first' }, { title: 'SDK: third' }]);
  const done = ok(await todos().select('title').is('is_complete', true), 'is');
  assert.deepEqual(done, [{ title: 'SDK: third' }]);

  // Count and paging, as the SDK's README shows them.
  const page = await todos().select('*', { count: 'exact' }).order('title').range(0, 1);
  assert.equal(page.error, null, JSON.stringify(page.error));
  assert.equal(page.count, 4);
  assert.equal(page.data.length, 2);
  assert.equal(page.status, 206, 'a partial page is 206 Partial Content');
  const head = await todos().select('*', { count: 'exact', head: true });
  assert.equal(head.error, null, JSON.stringify(head.error));
  assert.equal(head.count, 4);
  assert.equal(head.data, null);

  // Single and maybeSingle.
  const one = ok(await todos().select('title').eq('id', first.id).single(), 'single');
  assert.deepEqual(one, { title: 'SDK: first' });
  const nothing = ok(
    await todos().select('title').eq('id', '00000000-0000-4000-8000-000000000000').maybeSingle(),
    'maybeSingle',
  );
  assert.equal(nothing, null);

  // Update, with and without the changed rows back.
  const [renamed] = ok(
    await todos().update({ title: 'SDK: first, renamed', is_complete: true }).eq('id', first.id).select(),
    'update',
  );
  assert.equal(renamed.title, 'SDK: first, renamed');
  assert.equal(renamed.is_complete, true);
  assert.equal(renamed.user_id, USER_ID);
  const quiet = await todos().update({ is_complete: true }).eq('title', 'SDK: second');
  assert.equal(quiet.error, null, JSON.stringify(quiet.error));
  assert.equal(quiet.status, 204);

  // Delete, with and without the deleted rows back.
  const gone = ok(await todos().delete().eq('title', 'SDK: fourth').select('title'), 'delete');
  assert.deepEqual(gone, [{ title: 'SDK: fourth' }]);
  const quietDelete = await todos().delete().eq('id', more[1].id);
  assert.equal(quietDelete.error, null, JSON.stringify(quietDelete.error));
  assert.equal(quietDelete.status, 204);

  // Errors arrive as the SDK's PostgrestError, with PostgREST's code.
  const invalid = await todos().insert({ title: '' }).select();
  assert.equal(invalid.status, 400);
  assert.equal(invalid.error?.code, '23514');
  assert.match(invalid.error.message, /todos_title_length/);
  const bogus = await todos().select('nope');
  assert.equal(bogus.status, 400);
  assert.equal(bogus.error?.code, '42703');

  // Another user sees none of these rows and can change none of them.
  const theirs = ok(await other.from('todos').select('id'), 'other select');
  assert.deepEqual(theirs, []);
  const hijack = ok(
    await other.from('todos').update({ title: 'hijacked' }).eq('id', first.id).select(),
    'other update',
  );
  assert.deepEqual(hijack, [], 'RLS hides the row: 0 rows updated');
  const forged = await other.from('todos').insert({ title: 'as someone else', user_id: USER_ID }).select();
  assert.equal(forged.status, 403);
  assert.equal(forged.error?.code, '42501');

  // No token at all: InsForge's 401.
  const anonymous = await createClient({ baseUrl: BASE, retryCount: 0 }).database.from('todos').select();
  assert.equal(anonymous.status, 401);
  assert.equal(anonymous.error?.message, 'No token provided');

  const rows = ok(await todos().select('title,is_complete,user_id').order('title'), 'final');
  assert.deepEqual(rows, [
    { title: 'SDK: first, renamed', is_complete: true, user_id: USER_ID },
    { title: 'SDK: second', is_complete: true, user_id: USER_ID },
  ]);
  console.log(`E2E_RESULT ${JSON.stringify(rows)}`);
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
