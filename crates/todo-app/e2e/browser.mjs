// Real-browser end-to-end check of the todo page: two Chromium contexts sign in as two local
// test users (dev sign-in), add, toggle, rename and delete todos, and each sees only its own.
//
// Run by the Rust test `tests/e2e/main.rs`, which starts the app binary with --dev-sign-in on
// a fresh database and checks the database afterwards. By hand:
//   TODO_APP_URL=http://127.0.0.1:7130 TODO_APP_SCREENSHOT_DIR=/tmp/shots node browser.mjs
// The last line printed is `E2E_RESULT {"alice":[…],"bob":[…]}`: what each page showed.

import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';

import { chromium } from 'playwright-core';

const BASE = requiredEnv('TODO_APP_URL');
const SHOTS = requiredEnv('TODO_APP_SCREENSHOT_DIR');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
// Debian's Chromium, never a downloaded build; nothing may reach beyond loopback.
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const TIMEOUT_MS = 20_000;
// The whole run; the Rust test kills node later than this, but a kill would orphan Chromium.
const WATCHDOG_MS = 240_000;

// Text that would run script if the page ever parsed a title as HTML.
const HOSTILE = '<img src=x onerror="window.__pwned=1">Buy <b>oat</b> & "milk"';

function requiredEnv(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

const escapeRegExp = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Collects what must not happen on a page: script errors and CSP violations. */
function watch(page, name, problems) {
  page.on('pageerror', (error) => problems.push(`${name}: page error: ${error.message}`));
  page.on('console', (message) => {
    const text = message.text();
    // A 4xx answer is logged by Chromium itself as "Failed to load resource"; the error
    // scenario causes those on purpose. Anything else at error level is a bug.
    if (message.type() === 'error' && !text.startsWith('Failed to load resource')) {
      problems.push(`${name}: console error: ${text}`);
    }
    if (/Content Security Policy|Trusted Type/i.test(text)) {
      problems.push(`${name}: CSP: ${text}`);
    }
  });
}

const idle = (page) => page.locator('[data-testid="todos"][aria-busy="false"]').waitFor();

function item(page, title) {
  const exact = new RegExp(`^${escapeRegExp(title)}$`);
  return page
    .getByTestId('todo-item')
    .filter({ has: page.getByTestId('todo-title').filter({ hasText: exact }) });
}

async function signIn(page, key) {
  await page.goto(BASE);
  await page.getByLabel('Local test user').selectOption(key);
  await page.getByTestId('dev-sign-in').click();
  await page.getByTestId('signed-in-as').filter({ hasText: key }).waitFor();
  await idle(page);
}

async function add(page, title) {
  await page.getByLabel('New todo').fill(title);
  await page.getByTestId('add-todo').click();
  await idle(page);
  await item(page, title).waitFor();
}

async function toggle(page, title) {
  await item(page, title).getByTestId('todo-toggle').click();
  await idle(page);
}

async function rename(page, from, to) {
  await item(page, from).getByTestId('rename-todo').click();
  await page.getByTestId('rename-input').fill(to);
  await page.getByTestId('rename-save').click();
  await idle(page);
  await item(page, to).waitFor();
}

async function remove(page, title) {
  await item(page, title).getByRole('button', { name: `Delete “${title}”` }).click();
  await idle(page);
  await item(page, title).waitFor({ state: 'detached' });
}

/** The list as the page shows it, top to bottom. */
function shown(page) {
  return page.getByTestId('todo-item').evaluateAll((items) =>
    items.map((li) => ({
      title: li.querySelector('[data-testid="todo-title"]').textContent,
      is_complete: li.querySelector('[data-testid="todo-toggle"]').checked,
    })),
  );
}

async function errorShown(page) {
  const alert = page.getByRole('alert');
  await alert.waitFor();
  return {
    summary: await page.getByTestId('error-summary').textContent(),
    details: await page.getByTestId('error-details').textContent(),
    elements: await alert.locator('img, b, script').count(),
  };
}

async function main() {
  await mkdir(SHOTS, { recursive: true });
  // launch() gives the browser a fresh, empty temporary profile (user-data-dir) and deletes
  // it on close; each context below is a separate cookie/storage jar inside it.
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    timeout: 60_000,
  });
  const problems = [];
  const watchdog = setTimeout(() => {
    console.error(`browser.mjs: still running after ${WATCHDOG_MS} ms; giving up`);
    browser.close().finally(() => process.exit(1));
  }, WATCHDOG_MS);
  try {
    const pages = {};
    for (const key of ['alice', 'bob']) {
      const context = await browser.newContext({ viewport: { width: 900, height: 720 } });
      context.setDefaultTimeout(TIMEOUT_MS);
      const page = await context.newPage();
      watch(page, key, problems);
      pages[key] = page;
    }
    const { alice, bob } = pages;

    await Promise.all([signIn(alice, 'alice'), signIn(bob, 'bob')]);
    for (const page of [alice, bob]) {
      assert.deepEqual(await shown(page), [], 'a fresh database starts empty');
      assert.equal(await page.getByTestId('empty').isVisible(), true);
    }

    await add(alice, 'Buy oat milk');
    await add(bob, 'Walk the dog');
    await add(alice, 'Call the plumber');
    await add(bob, 'Fix the bike brakes');
    await add(alice, HOSTILE);
    await add(alice, 'Temporary');
    await remove(alice, 'Temporary');

    await toggle(alice, 'Buy oat milk');
    await rename(alice, 'Call the plumber', 'Call the plumber at 9');
    await toggle(bob, 'Fix the bike brakes');
    await rename(bob, 'Walk the dog', 'Walk the dog twice');

    // A reload shows what the server kept, and the dev session survives it.
    await Promise.all([alice.reload(), bob.reload()]);
    for (const [key, page] of Object.entries(pages)) {
      await page.getByTestId('signed-in-as').filter({ hasText: key }).waitFor();
      await idle(page);
    }

    const result = { alice: await shown(alice), bob: await shown(bob) };
    assert.deepEqual(result.alice, [
      { title: HOSTILE, is_complete: false },
      { title: 'Call the plumber at 9', is_complete: false },
      { title: 'Buy oat milk', is_complete: true },
    ]);
    assert.deepEqual(result.bob, [
      { title: 'Fix the bike brakes', is_complete: true },
      { title: 'Walk the dog twice', is_complete: false },
    ]);
    // Neither page contains the other's titles anywhere, not just in the list.
    for (const [me, other] of [
      ['alice', 'bob'],
      ['bob', 'alice'],
    ]) {
      const text = await pages[me].locator('body').textContent();
      for (const { title } of result[other]) {
        assert.ok(!text.includes(title), `${me} sees ${other}'s "${title}"`);
      }
    }
    assert.equal(await alice.getByTestId('todo-count').textContent(), '3 todos, 1 done');
    // The hostile title is text: no element was made from it and its handler never ran.
    assert.equal(await alice.locator('[data-testid="todo-list"] img, [data-testid="todo-list"] b').count(), 0);
    assert.equal(await alice.evaluate(() => window.__pwned), undefined);
    // Accessible names come from the titles.
    await alice.getByRole('checkbox', { name: 'Buy oat milk' }).waitFor();
    await alice.getByRole('button', { name: 'Rename “Call the plumber at 9”' }).waitFor();

    for (const [key, page] of Object.entries(pages)) {
      await page.screenshot({ path: path.join(SHOTS, `${key}.png`), fullPage: true });
    }

    // A real API error (the title CHECK constraint) is shown readably.
    await alice.getByLabel('New todo').evaluate((input) => input.removeAttribute('maxlength'));
    await alice.getByLabel('New todo').fill('x'.repeat(501));
    await alice.getByTestId('add-todo').click();
    await idle(alice);
    let error = await errorShown(alice);
    assert.equal(error.summary, 'Could not add the todo: A title must be 1 to 500 characters.');
    assert.match(error.details, /todos_title_length/);
    assert.match(error.details, /HTTP 400 · 23514$/);
    await alice.screenshot({ path: path.join(SHOTS, 'alice-error.png'), fullPage: true });
    await alice.getByTestId('dismiss-error').click();
    assert.equal(await alice.getByRole('alert').isVisible(), false);

    // An error body is text too, whatever it contains.
    await alice.route('**/api/database/records/todos?*', (route) =>
      route.request().method() === 'POST'
        ? route.fulfill({
            status: 400,
            contentType: 'application/json',
            body: JSON.stringify({
              code: 'PGRST999',
              message: HOSTILE,
              details: '<script>window.__pwned=2</script>',
              hint: null,
            }),
          })
        : route.continue(),
    );
    await alice.getByLabel('New todo').fill('anything');
    await alice.getByTestId('add-todo').click();
    await idle(alice);
    error = await errorShown(alice);
    assert.equal(error.summary, `Could not add the todo: ${HOSTILE}`);
    assert.equal(error.details, '<script>window.__pwned=2</script> — HTTP 400 · PGRST999');
    assert.equal(error.elements, 0);
    assert.equal(await alice.evaluate(() => window.__pwned), undefined);
    await alice.unroute('**/api/database/records/todos?*');

    // Signing out hides the list and offers the picker again; the other user is unaffected.
    await alice.getByTestId('sign-out').click();
    await alice.getByTestId('dev-sign-in-form').waitFor();
    assert.equal(await alice.getByTestId('todos').isVisible(), false);
    assert.equal(await alice.getByTestId('todo-item').count(), 0);
    await bob.reload();
    await idle(bob);
    assert.deepEqual(await shown(bob), result.bob);

    assert.deepEqual(problems, [], 'script errors or CSP violations');
    console.log(`screenshots in ${SHOTS}`);
    console.log(`E2E_RESULT ${JSON.stringify(result)}`);
  } finally {
    clearTimeout(watchdog);
    if (problems.length) console.error(`problems seen:\n${problems.join('\n')}`);
    await browser.close();
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
