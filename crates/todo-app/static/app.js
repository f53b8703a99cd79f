// The todo page: sign in (a picker of local test users, or Clerk), then list, add, toggle,
// rename and delete todos through the records API at this origin.
//
// Every API call carries a fresh `Authorization: Bearer <token>`: Clerk's
// `session.getToken({ template: 'insforge' })`, or in dev mode a token this server mints.
// Row Level Security decides which rows come back, so the page never filters by user.
// Text from users and from the API reaches the DOM only as text (textContent, attribute and
// property values): the page's CSP requires Trusted Types, so an HTML sink would throw.

const RECORDS = '/api/database/records/todos';
const COLUMNS = 'id,title,is_complete,created_at';
const DEV_USER_STORAGE = 'todo-app.dev-user';
// A dev token is replaced this long before it expires, so a slow request never carries a
// token that dies on the way.
const TOKEN_MARGIN_MS = 10_000;

/** The element with this `data-testid` (the page's stable handles, for code and tests). */
function el(testid) {
  const node = document.querySelector(`[data-testid="${testid}"]`);
  if (!node) throw new Error(`the page has no ${testid} element`);
  return node;
}

/** A non-2xx answer from this app, with its JSON body when it had one. */
class HttpError extends Error {
  constructor(status, body, text) {
    super(`HTTP ${status}`);
    this.status = status;
    this.body = body;
    this.text = text;
  }
}

async function request(method, url, { token, body, prefer } = {}) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (prefer) headers.Prefer = prefer;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: 'no-store',
  });
  const text = await response.text();
  let json = null;
  if (text) {
    try {
      json = JSON.parse(text);
    } catch {
      json = null;
    }
  }
  if (!response.ok) throw new HttpError(response.status, json, text);
  return json;
}

// Plain words for the errors a person can act on; the server's own message follows them.
const FRIENDLY = {
  23514: 'A title must be 1 to 500 characters.',
  42501: 'The database refused: that row is not yours.',
  PGRST000: 'The database is unavailable right now; try again in a moment.',
  AUTH_INVALID_CREDENTIALS: 'You are not signed in.',
  AUTH_UNAUTHORIZED: 'Your sign-in is no longer valid: sign out and in again.',
  AUTH_FORBIDDEN: 'This sign-in may not use the todos API.',
};

/** `{summary, details}` for any error: API bodies in PostgREST's or InsForge's shape, network failures, the rest. */
function describe(error) {
  if (error instanceof HttpError) {
    const body = error.body && typeof error.body === 'object' ? error.body : {};
    const text = (value) => (typeof value === 'string' && value ? value : null);
    const code = text(body.code) ?? text(body.error);
    const message = text(body.message);
    const friendly = code ? FRIENDLY[code] : undefined;
    const details = [friendly ? message : null, text(body.details), text(body.hint)];
    if (!message && error.text && !error.body) details.push(error.text.slice(0, 200));
    details.push(`HTTP ${error.status}${code ? ` · ${code}` : ''}`);
    return {
      summary: friendly ?? message ?? `The server answered HTTP ${error.status}.`,
      details: details.filter(Boolean).join(' — '),
    };
  }
  if (error instanceof TypeError) {
    // What fetch throws when the server cannot be reached at all.
    return { summary: 'Cannot reach the app.', details: error.message };
  }
  return { summary: String(error?.message ?? error), details: '' };
}

function showError(action, error) {
  const { summary, details } = describe(error);
  el('error-summary').textContent = `${action}: ${summary}`;
  el('error-details').textContent = details;
  el('error').hidden = false;
}

function clearError() {
  el('error').hidden = true;
  el('error-summary').textContent = '';
  el('error-details').textContent = '';
}

// ---------------------------------------------------------------- sign-in providers
// Each returns { user(), token(), signOut(), … }; user() is { name, id } or null.

async function devAuth() {
  const { users } = await request('GET', '/dev/users');
  const select = el('dev-user');
  select.replaceChildren(
    ...users.map((user) => {
      const option = document.createElement('option');
      option.value = user.key;
      option.textContent = user.email ? `${user.key} (${user.email})` : user.key;
      return option;
    }),
  );
  let current = null;
  let cached = null;
  const mint = async (key) => {
    const minted = await request('POST', '/dev/token', { body: { user: key } });
    cached = {
      token: minted.token,
      until: Date.now() + minted.expires_in * 1000 - TOKEN_MARGIN_MS,
    };
    return minted.user;
  };
  return {
    user: () => current && { name: current.key, id: current.id },
    async signIn(key) {
      current = await mint(key);
      // The key only (never the token): a reload signs the same user in again.
      sessionStorage.setItem(DEV_USER_STORAGE, key);
    },
    async restore() {
      const key = sessionStorage.getItem(DEV_USER_STORAGE);
      if (!key || !users.some((user) => user.key === key)) return;
      select.value = key;
      await this.signIn(key);
    },
    async signOut() {
      current = null;
      cached = null;
      sessionStorage.removeItem(DEV_USER_STORAGE);
    },
    async token() {
      if (!current) throw new Error('You are not signed in.');
      if (!cached || Date.now() >= cached.until) await mint(current.key);
      return cached.token;
    },
  };
}

function loadScript(src, publishableKey) {
  return new Promise((resolve, reject) => {
    const script = document.createElement('script');
    script.async = true;
    script.crossOrigin = 'anonymous';
    script.dataset.clerkPublishableKey = publishableKey;
    script.addEventListener('load', resolve);
    script.addEventListener('error', () => reject(new Error(`Cannot load Clerk from ${src}`)));
    script.src = src;
    document.head.append(script);
  });
}

// Clerk's script-tag setup (clerk-js from the key's Frontend API). Needs the internet and a
// Clerk application whose JWT template `insforge` signs with this app's secret.
async function clerkAuth({ publishableKey, scriptUrl }) {
  await loadScript(scriptUrl, publishableKey);
  const clerk = window.Clerk;
  if (!clerk) throw new Error('Clerk did not start.');
  await clerk.load();
  let mounted = null;
  return {
    user: () =>
      clerk.user
        ? {
            name: clerk.user.primaryEmailAddress?.emailAddress ?? clerk.user.username ?? clerk.user.id,
            id: clerk.user.id,
          }
        : null,
    showSignIn(node, show) {
      if (show && !mounted) {
        clerk.mountSignIn(node);
        mounted = node;
      } else if (!show && mounted) {
        clerk.unmountSignIn(mounted);
        mounted = null;
      }
    },
    onChange: (listener) => clerk.addListener(listener),
    signOut: () => clerk.signOut(),
    async token() {
      const token = await clerk.session?.getToken({ template: 'insforge' });
      if (!token) throw new Error('You are not signed in.');
      return token;
    },
  };
}

// ---------------------------------------------------------------- state and rendering

const app = { mode: 'none', auth: null, todos: [], editing: null, pending: 0 };

function render() {
  const user = app.auth?.user() ?? null;
  el('loading').hidden = true;
  el('session').hidden = !user;
  el('sign-in').hidden = Boolean(user);
  el('todos').hidden = !user;
  el('dev-sign-in-form').hidden = app.mode !== 'dev';
  el('clerk-sign-in').hidden = app.mode !== 'clerk';
  el('no-sign-in').hidden = app.mode !== 'none';
  app.auth?.showSignIn?.(el('clerk-sign-in'), !user);
  if (user) {
    el('signed-in-as').textContent = user.name;
    el('signed-in-id').textContent = user.id === user.name ? '' : user.id;
  }
  renderTodos();
}

function button(text, testid, label, onClick) {
  const node = document.createElement('button');
  node.type = 'button';
  node.textContent = text;
  node.dataset.testid = testid;
  if (label) node.setAttribute('aria-label', label);
  if (onClick) node.addEventListener('click', onClick);
  return node;
}

function renderTodos() {
  el('todo-list').replaceChildren(...app.todos.map(todoItem));
  const count = app.todos.length;
  const done = app.todos.filter((todo) => todo.is_complete).length;
  el('todo-count').textContent = count ? `${count} ${count === 1 ? 'todo' : 'todos'}, ${done} done` : '';
  el('empty').hidden = count > 0;
}

function todoItem(todo) {
  const item = document.createElement('li');
  item.dataset.testid = 'todo-item';
  item.dataset.todoId = todo.id;
  item.classList.toggle('done', todo.is_complete);
  if (app.editing === todo.id) {
    item.append(renameForm(todo));
    return item;
  }
  const box = document.createElement('input');
  box.type = 'checkbox';
  box.id = `todo-${todo.id}`;
  box.checked = todo.is_complete;
  box.dataset.testid = 'todo-toggle';
  box.addEventListener('change', () => toggle(todo, box));
  // The label makes the title the checkbox's accessible name, and a click target.
  const title = document.createElement('label');
  title.htmlFor = box.id;
  title.dataset.testid = 'todo-title';
  title.textContent = todo.title;
  const rename = button('Rename', 'rename-todo', `Rename “${todo.title}”`, () => {
    app.editing = todo.id;
    renderTodos();
  });
  const remove = button('Delete', 'delete-todo', `Delete “${todo.title}”`, () => del(todo, remove));
  remove.classList.add('danger');
  const actions = document.createElement('span');
  actions.className = 'actions';
  actions.append(rename, remove);
  item.append(box, title, actions);
  return item;
}

function renameForm(todo) {
  const form = document.createElement('form');
  form.className = 'row rename';
  form.dataset.testid = 'rename-form';
  const input = document.createElement('input');
  input.value = todo.title;
  input.maxLength = 500;
  input.required = true;
  input.autocomplete = 'off';
  input.dataset.testid = 'rename-input';
  input.setAttribute('aria-label', `New title for “${todo.title}”`);
  const save = button('Save', 'rename-save');
  save.type = 'submit';
  const stop = () => {
    app.editing = null;
    renderTodos();
  };
  const cancel = button('Cancel', 'rename-cancel', null, stop);
  cancel.classList.add('secondary');
  input.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') stop();
  });
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    rename(todo, input.value, save);
  });
  form.append(input, save, cancel);
  // After the list has been replaced, the input is in the document and can take focus.
  queueMicrotask(() => {
    input.focus();
    input.select();
  });
  return form;
}

// ---------------------------------------------------------------- API calls

async function api(method, params, options = {}) {
  const token = await app.auth.token();
  return request(method, `${RECORDS}?${new URLSearchParams(params)}`, { ...options, token });
}

/**
 * Runs `work` with `control` disabled and the todos section marked aria-busy (tests wait for
 * it to clear); a failure is shown as `action: …`.
 */
async function busy(control, action, work) {
  app.pending += 1;
  el('todos').setAttribute('aria-busy', 'true');
  if (control) control.disabled = true;
  clearError();
  try {
    await work();
  } catch (error) {
    showError(action, error);
  } finally {
    if (control) control.disabled = false;
    app.pending -= 1;
    if (app.pending === 0) el('todos').setAttribute('aria-busy', 'false');
  }
}

async function loadTodos() {
  // Newest first; RLS already limits the rows to the signed-in user's.
  app.todos = (await api('GET', { select: COLUMNS, order: 'created_at.desc,id.desc' })) ?? [];
  renderTodos();
}

/** The rows a write returned; none means the row is gone or not ours (RLS hides it). */
function expectRow(rows) {
  if (!Array.isArray(rows) || rows.length === 0) {
    throw new Error('That todo no longer exists; the list has been refreshed.');
  }
}

function add(event) {
  event.preventDefault();
  const input = el('new-todo-title');
  const title = input.value.trim();
  if (!title) {
    input.value = '';
    input.focus();
    return;
  }
  busy(el('add-todo'), 'Could not add the todo', async () => {
    await api('POST', { select: COLUMNS }, { body: { title }, prefer: 'return=representation' });
    input.value = '';
    await loadTodos();
  });
}

function toggle(todo, box) {
  busy(box, 'Could not update the todo', async () => {
    try {
      const rows = await api(
        'PATCH',
        { id: `eq.${todo.id}`, select: COLUMNS },
        { body: { is_complete: box.checked }, prefer: 'return=representation' },
      );
      expectRow(rows);
    } finally {
      await loadTodos();
    }
  });
}

function rename(todo, value, control) {
  const title = value.trim();
  if (title === todo.title || !title) {
    app.editing = null;
    renderTodos();
    return;
  }
  busy(control, 'Could not rename the todo', async () => {
    const rows = await api(
      'PATCH',
      { id: `eq.${todo.id}`, select: COLUMNS },
      { body: { title }, prefer: 'return=representation' },
    );
    app.editing = null;
    try {
      expectRow(rows);
    } finally {
      await loadTodos();
    }
  });
}

function del(todo, control) {
  busy(control, 'Could not delete the todo', async () => {
    await api('DELETE', { id: `eq.${todo.id}` });
    await loadTodos();
  });
}

// ---------------------------------------------------------------- start

function signedIn() {
  app.todos = [];
  app.editing = null;
  render();
  return busy(null, 'Could not load your todos', loadTodos);
}

async function main() {
  el('dismiss-error').addEventListener('click', clearError);
  el('add-form').addEventListener('submit', add);
  el('dev-sign-in-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const control = el('dev-sign-in');
    control.disabled = true;
    clearError();
    app.auth
      .signIn(el('dev-user').value)
      .then(signedIn, (error) => showError('Could not sign in', error))
      .finally(() => {
        control.disabled = false;
      });
  });
  el('sign-out').addEventListener('click', () => {
    clearError();
    app.auth.signOut().then(
      () => {
        app.todos = [];
        render();
      },
      (error) => showError('Could not sign out', error),
    );
  });

  const config = await request('GET', '/config.json');
  app.mode = config.signIn;
  if (app.mode === 'dev') {
    app.auth = await devAuth();
    await app.auth.restore().catch(() => sessionStorage.removeItem(DEV_USER_STORAGE));
  } else if (app.mode === 'clerk') {
    app.auth = await clerkAuth(config.clerk);
    let userId = app.auth.user()?.id ?? null;
    // Clerk signs in and out inside its own UI: follow it.
    app.auth.onChange(() => {
      const now = app.auth.user()?.id ?? null;
      if (now === userId) return;
      userId = now;
      if (now) signedIn();
      else render();
    });
  }
  if (app.auth?.user()) await signedIn();
  else render();
}

main().catch((error) => {
  el('loading').hidden = true;
  showError('The page could not start', error);
});
