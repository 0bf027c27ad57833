// activityd web UI. Plain JavaScript, no build step, no dependencies.
// It talks only to the public /v1 API with the signed-in token, so it can
// never see more than that token allows. The token is kept in this tab's
// sessionStorage only.
'use strict';

(function () {
  const TOKEN_KEY = 'activityd.token';
  const NEXT = { PENDING: 'IN_PROGRESS', IN_PROGRESS: 'DONE' };
  const NEXT_VERB = { IN_PROGRESS: 'Start', DONE: 'Finish' };
  const SVG = 'http://www.w3.org/2000/svg';

  const $ = (id) => document.getElementById(id);
  const el = (tag, attrs, ...children) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'text') e.textContent = v;
      else if (k === 'class') e.className = v;
      else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c);
    return e;
  };
  const svg = (tag, attrs) => {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    return e;
  };

  // ---- token -------------------------------------------------------------

  function token() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch (_) { return ''; }
  }

  // ---- API client ----------------------------------------------------------

  class ApiError extends Error {
    constructor(problem, status) {
      super(problem.title || 'Error');
      this.problem = problem;
      this.status = status;
    }
  }

  // api calls the /v1 API and resolves to the parsed JSON body, or rejects
  // with an ApiError carrying the problem document (RFC 9457) it answered.
  async function api(method, path, body, tok) {
    const headers = { Accept: 'application/json, application/problem+json' };
    const t = tok !== undefined ? tok : token();
    if (t) headers.Authorization = 'Bearer ' + t;
    const init = { method, headers, cache: 'no-store', credentials: 'omit' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      throw new ApiError({ title: 'Network error', detail: 'The service could not be reached (' + e.message + ').' }, 0);
    }
    const text = await res.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (_) { data = null; }
    }
    if (!res.ok) {
      const p = data && typeof data === 'object' && !Array.isArray(data) ? data : {};
      throw new ApiError({
        title: p.title || (res.status + ' ' + (res.statusText || 'Error')),
        status: p.status || res.status,
        detail: p.detail || (data === null && text ? text.slice(0, 300) : ''),
        errors: Array.isArray(p.errors) ? p.errors : [],
        type: p.type || '',
      }, res.status);
    }
    return data;
  }

  // ---- messages ------------------------------------------------------------

  function clearMessages() {
    $('problem').replaceChildren();
    $('notice').textContent = '';
    for (const e of document.querySelectorAll('[aria-invalid="true"]')) e.removeAttribute('aria-invalid');
  }

  function notify(text) {
    $('problem').replaceChildren();
    $('notice').textContent = text;
  }

  // showError puts a problem document (or any error) in the alert region:
  // its title and status, its detail, and each field error; inputs of form
  // whose name is blamed are marked invalid.
  function showError(err, form) {
    $('notice').textContent = '';
    const p = err instanceof ApiError ? err.problem
      : { title: 'Something went wrong', detail: String(err && err.message || err), errors: [] };
    const title = p.status ? p.title + ' (' + p.status + ')' : p.title;
    const box = [el('h2', { text: title })];
    if (p.detail) box.push(el('p', { class: 'detail', text: p.detail }));
    if (p.errors && p.errors.length) {
      const ul = el('ul', { class: 'field-errors' });
      for (const fe of p.errors) {
        const li = el('li', {}, el('span', { class: 'field-name', text: fe.field || '(request)' }), ': ' + (fe.message || ''));
        ul.append(li);
        const input = form && fe.field ? form.elements.namedItem(fe.field.split(/[.[]/)[0]) : null;
        if (input && input.setAttribute) input.setAttribute('aria-invalid', 'true');
      }
      box.push(ul);
    }
    $('problem').replaceChildren(...box);
    if (err instanceof ApiError && err.status === 401 && token()) {
      signOut(false);
    }
  }

  // ---- time ----------------------------------------------------------------

  // localToRFC3339 turns a datetime-local value (the person's time zone)
  // into RFC 3339 in UTC, or '' for an empty value.
  function localToRFC3339(v) {
    if (!v) return '';
    const d = new Date(v);
    if (isNaN(d.getTime())) throw new ApiError({ title: 'Invalid date', detail: 'Not a date and time: ' + v, errors: [] }, 0);
    return d.toISOString();
  }

  const pad = (n) => String(n).padStart(2, '0');
  function fmtTime(iso) {
    const d = new Date(iso);
    if (isNaN(d.getTime())) return iso;
    return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' +
      pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
  }
  function timeEl(iso) {
    return el('time', { datetime: iso, title: iso, text: fmtTime(iso) });
  }

  function positiveInt(form, name) {
    const input = form.elements.namedItem(name);
    const v = input.value.trim();
    if (v === '') return '';
    if (!/^[1-9][0-9]*$/.test(v)) {
      input.setAttribute('aria-invalid', 'true');
      throw new ApiError({ title: 'Invalid user id', detail: 'A user id is a positive whole number.', errors: [{ field: name, message: 'must be a positive integer, not "' + v + '"' }] }, 0);
    }
    return v;
  }

  async function busy(button, fn) {
    if (button) button.disabled = true;
    try { return await fn(); } finally { if (button) button.disabled = false; }
  }

  // ---- sign in / out ---------------------------------------------------------

  function showSignedIn() {
    $('signin-section').hidden = true;
    $('app').hidden = false;
    $('who').hidden = false;
  }

  function signOut(clearMsgs) {
    try { sessionStorage.removeItem(TOKEN_KEY); } catch (_) { /* storage unavailable */ }
    state.cursor = null;
    state.query = null;
    state.chart = null;
    state.seq++;
    state.changed.clear();
    $('events-body').replaceChildren();
    $('counts-body').replaceChildren();
    $('chart').replaceChildren();
    $('chart-figure').hidden = true;
    $('counts-table-wrap').hidden = true;
    $('counts-empty').hidden = true;
    $('events-empty').hidden = true;
    $('more').hidden = true;
    for (const f of ['record', 'filters', 'counts', 'signin']) $(f).reset();
    $('app').hidden = true;
    $('who').hidden = true;
    $('signin-section').hidden = false;
    if (clearMsgs !== false) notify('Signed out. The token was removed from this tab.');
    $('token').focus();
  }

  async function signIn(ev) {
    ev.preventDefault();
    clearMessages();
    const form = ev.currentTarget;
    const t = form.elements.namedItem('token').value.trim();
    if (!t) {
      form.elements.namedItem('token').setAttribute('aria-invalid', 'true');
      showError(new ApiError({ title: 'Token required', detail: 'Paste an API token to sign in.', errors: [{ field: 'token', message: 'is empty' }] }, 0));
      return;
    }
    await busy(form.querySelector('button[type=submit]'), async () => {
      try {
        // Check the token with a cheap read: only 401 means it is refused; a
        // token without events:read (403) may still record events.
        await api('GET', '/v1/events?limit=1', undefined, t);
      } catch (e) {
        if (e instanceof ApiError && e.status === 401) {
          form.elements.namedItem('token').setAttribute('aria-invalid', 'true');
          showError(e);
          return;
        }
        if (!(e instanceof ApiError && e.status === 403)) {
          showError(e);
          return;
        }
      }
      sessionStorage.setItem(TOKEN_KEY, t);
      form.reset();
      showSignedIn();
      notify('Signed in.');
      await loadEvents(false);
      $('events-h').focus();
    });
  }

  // ---- events ----------------------------------------------------------------

  const state = { query: null, cursor: null, chart: null, seq: 0, changed: new Map() };

  function filterQuery() {
    const f = $('filters');
    const q = new URLSearchParams();
    const user = positiveInt(f, 'user_id');
    if (user) q.set('user_id', user);
    for (const a of f.elements.namedItem('action').value.split(',').map((s) => s.trim()).filter(Boolean)) {
      q.append('action', a);
    }
    const status = f.elements.namedItem('status').value;
    if (status) q.set('status', status);
    const from = localToRFC3339(f.elements.namedItem('from').value);
    if (from) q.set('from', from);
    const to = localToRFC3339(f.elements.namedItem('to').value);
    if (to) q.set('to', to);
    q.set('limit', '20');
    return q;
  }

  async function loadEvents(append) {
    let q;
    if (append && state.query) {
      q = new URLSearchParams(state.query);
      q.set('cursor', state.cursor);
    } else {
      q = filterQuery();
      state.query = q.toString();
    }
    // Only the latest load is shown: an older answer arriving late is dropped.
    const seq = ++state.seq;
    $('events').setAttribute('aria-busy', 'true');
    let page;
    try {
      page = await api('GET', '/v1/events?' + q.toString());
    } finally {
      if (seq === state.seq) $('events').setAttribute('aria-busy', 'false');
    }
    if (seq !== state.seq) return page;
    const body = $('events-body');
    if (!append) body.replaceChildren();
    for (const e of page.items || []) body.append(eventRow(e));
    state.cursor = page.next_cursor || null;
    $('more').hidden = !state.cursor;
    $('events-empty').hidden = body.children.length > 0;
    return page;
  }

  function eventRow(e) {
    // A status this tab changed after the list was read is not undone by it.
    const known = state.changed.get(e.id);
    if (known && Date.parse(known.updated_at) >= Date.parse(e.updated_at)) e = known;
    const tr = el('tr', { 'data-id': e.id, 'data-status': e.status, 'data-action': e.action });
    fillRow(tr, e);
    return tr;
  }

  function fillRow(tr, e) {
    tr.dataset.status = e.status;
    const meta = e.metadata && Object.keys(e.metadata).length ? JSON.stringify(e.metadata) : '';
    const next = NEXT[e.status];
    const cell = (label, ...c) => el('td', { 'data-label': label }, ...c);
    let step = el('span', { class: 'hint', text: 'None (done)' });
    if (next) {
      step = el('button', {
        type: 'button', class: 'advance secondary', 'data-next': next,
        'aria-label': NEXT_VERB[next] + ': move ' + e.action + ' of user ' + e.user_id + ' to ' + next,
        text: NEXT_VERB[next] + ' → ' + next,
      });
      step.addEventListener('click', () => advance(tr, e, next, step));
    }
    tr.replaceChildren(
      cell('Occurred', timeEl(e.occurred_at)),
      cell('User', String(e.user_id)),
      cell('Action', e.action),
      cell('Status', el('span', { class: 'status status-' + e.status, text: e.status })),
      Object.assign(cell('Metadata', meta), { className: 'meta' }),
      cell('Next step', step),
    );
  }

  async function advance(tr, e, next, button) {
    clearMessages();
    await busy(button, async () => {
      try {
        const updated = await api('PATCH', '/v1/events/' + encodeURIComponent(e.id), { status: next });
        state.changed.set(updated.id, updated);
        const row = document.querySelector('#events-body tr[data-id="' + CSS.escape(updated.id) + '"]') || tr;
        fillRow(row, updated);
        notify('Event ' + updated.action + ' of user ' + updated.user_id + ' is now ' + updated.status + '.');
        const b = row.querySelector('button.advance');
        if (b) b.focus();
      } catch (err) {
        showError(err);
      }
    });
  }

  async function applyFilters(ev) {
    ev.preventDefault();
    clearMessages();
    await busy(ev.currentTarget.querySelector('button[type=submit]'), async () => {
      try {
        const page = await loadEvents(false);
        const n = (page.items || []).length;
        notify(n === 0 ? 'No events match these filters.' : 'Showing ' + n + (page.next_cursor ? ' (more available).' : '.'));
      } catch (err) {
        showError(err, $('filters'));
      }
    });
  }

  async function record(ev) {
    ev.preventDefault();
    clearMessages();
    const form = ev.currentTarget;
    await busy(form.querySelector('button[type=submit]'), async () => {
      try {
        const body = {};
        const user = positiveInt(form, 'user_id');
        if (user) body.user_id = Number(user);
        body.action = form.elements.namedItem('action').value.trim();
        const occurred = localToRFC3339(form.elements.namedItem('occurred_at').value);
        if (occurred) body.occurred_at = occurred;
        const metaText = form.elements.namedItem('metadata').value.trim();
        if (metaText) {
          try {
            body.metadata = JSON.parse(metaText);
          } catch (e) {
            form.elements.namedItem('metadata').setAttribute('aria-invalid', 'true');
            throw new ApiError({ title: 'Metadata is not valid JSON', detail: e.message, errors: [{ field: 'metadata', message: 'must be a JSON object' }] }, 0);
          }
        }
        const created = await api('POST', '/v1/events', body);
        form.reset();
        // Refresh the list, then confirm (a token without events:read may
        // record but not list: that error is shown beside the confirmation).
        let listErr = null;
        try { await loadEvents(false); } catch (e) { listErr = e; }
        if (listErr) showError(listErr);
        $('notice').textContent = 'Recorded ' + created.action + ' for user ' + created.user_id + ' (' + created.status + ').';
      } catch (err) {
        showError(err, form);
      }
    });
  }

  // ---- counts ----------------------------------------------------------------

  async function showCounts(ev) {
    ev.preventDefault();
    clearMessages();
    const form = ev.currentTarget;
    await busy(form.querySelector('button[type=submit]'), async () => {
      try {
        const user = positiveInt(form, 'user_id');
        const q = new URLSearchParams({ order: 'desc', limit: '48' });
        const path = user ? '/v1/users/' + user + '/activity-counts?' : '/v1/activity-counts?';
        const page = await api('GET', path + q.toString());
        renderCounts(page.items || [], user);
      } catch (err) {
        showError(err, form);
      }
    });
  }

  // renderCounts draws one bar per window (the newest 48, oldest left),
  // summing users when several are listed, plus the same data as a table.
  function renderCounts(items, user) {
    const byWindow = new Map();
    for (const it of items) {
      const w = byWindow.get(it.window_start) || { start: it.window_start, end: it.window_end, total: 0, by: {}, users: new Set() };
      w.total += it.total;
      w.users.add(it.user_id);
      for (const [a, n] of Object.entries(it.by_action || {})) w.by[a] = (w.by[a] || 0) + n;
      byWindow.set(it.window_start, w);
    }
    const windows = [...byWindow.values()].sort((a, b) => a.start.localeCompare(b.start));
    const users = new Set(items.map((i) => i.user_id));
    const who = user ? 'user ' + user : users.size === 1 ? 'user ' + [...users][0] : users.size ? 'all users (' + users.size + ')' : 'you';
    const empty = windows.length === 0;
    $('counts-empty').hidden = !empty;
    $('chart-figure').hidden = empty;
    $('counts-table-wrap').hidden = empty;
    $('chart').replaceChildren();
    $('counts-body').replaceChildren();
    if (empty) {
      state.chart = null;
      notify('No computed counts for ' + who + ' yet.');
      return;
    }
    $('chart-caption').textContent = 'Events per window for ' + who;
    $('counts-table-caption').textContent = 'Counts per window for ' + who;
    state.chart = { windows, who };
    $('chart').replaceChildren(drawChart(windows, who));
    for (const w of windows) {
      $('counts-body').append(el('tr', {},
        el('td', {}, timeEl(w.start)), el('td', {}, timeEl(w.end)), el('td', { text: String(w.total) }),
        el('td', { text: byActionText(w.by) })));
    }
    notify('Showing ' + windows.length + ' window' + (windows.length === 1 ? '' : 's') + ' for ' + who + '.');
  }

  const byActionText = (by) => Object.entries(by).sort().map(([a, n]) => a + ' ' + n).join(', ');
  const plural = (n) => n + ' event' + (n === 1 ? '' : 's');

  function drawChart(windows, who) {
    // Drawn at the width it is shown at, so that its text stays readable on a phone.
    const W = Math.round(Math.min(900, Math.max(300, $('chart').clientWidth || 640)));
    const H = 240, left = 40, right = 10, top = 16, bottom = 40;
    const max = Math.max(1, ...windows.map((w) => w.total));
    const plotW = W - left - right, plotH = H - top - bottom;
    const slot = plotW / windows.length;
    const barW = Math.max(2, Math.min(48, slot * 0.7));
    const root = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, role: 'group', 'aria-label': 'Bar chart: events per window for ' + who, focusable: 'false' });
    const y = (v) => top + plotH - (v / max) * plotH;
    // Axis and gridlines at 0, max/2, max.
    for (const v of [0, Math.round(max / 2), max]) {
      root.append(svg('line', { class: v === 0 ? 'axis' : 'grid-line', x1: left, x2: W - right, y1: y(v), y2: y(v), 'aria-hidden': 'true' }));
      const t = svg('text', { x: left - 6, y: y(v) + 4, 'text-anchor': 'end', 'aria-hidden': 'true' });
      t.textContent = String(v);
      root.append(t);
    }
    windows.forEach((w, i) => {
      const x = left + slot * i + (slot - barW) / 2;
      const label = fmtTime(w.start) + ' to ' + fmtTime(w.end) + ': ' + plural(w.total) +
        (Object.keys(w.by).length ? ' (' + byActionText(w.by) + ')' : '');
      const h = Math.max(1, (w.total / max) * plotH);
      const rect = svg('rect', {
        class: 'bar', x: x.toFixed(1), y: (top + plotH - h).toFixed(1), width: barW.toFixed(1), height: h.toFixed(1),
        role: 'img', 'aria-label': label, tabindex: '0', 'data-total': w.total, 'data-window-start': w.start,
      });
      const title = svg('title');
      title.textContent = label;
      rect.append(title);
      root.append(rect);
      if (slot >= 18) {
        const v = svg('text', { class: 'value', x: (x + barW / 2).toFixed(1), y: (top + plotH - h - 4).toFixed(1), 'text-anchor': 'middle', 'aria-hidden': 'true' });
        v.textContent = String(w.total);
        root.append(v);
      }
    });
    // First and last window start under the axis.
    const first = svg('text', { x: left, y: H - bottom + 18, 'aria-hidden': 'true' });
    first.textContent = fmtTime(windows[0].start);
    root.append(first);
    if (windows.length > 1) {
      const last = svg('text', { x: W - right, y: H - bottom + 34, 'text-anchor': 'end', 'aria-hidden': 'true' });
      last.textContent = fmtTime(windows[windows.length - 1].start);
      root.append(last);
    }
    return root;
  }

  // ---- wiring ----------------------------------------------------------------

  document.addEventListener('DOMContentLoaded', () => {
    let tz = '';
    try { tz = Intl.DateTimeFormat().resolvedOptions().timeZone || ''; } catch (_) { tz = ''; }
    $('tz-hint').textContent = 'Times are shown and entered in your time zone' + (tz ? ' (' + tz + ')' : '') +
      '; hover a time for its UTC value.';
    $('signin').addEventListener('submit', signIn);
    $('signout').addEventListener('click', () => { clearMessages(); signOut(); });
    $('filters').addEventListener('submit', applyFilters);
    $('filters').addEventListener('reset', () => { clearMessages(); });
    $('record').addEventListener('submit', record);
    $('counts').addEventListener('submit', showCounts);
    $('more').addEventListener('click', async (ev) => {
      clearMessages();
      await busy(ev.currentTarget, async () => {
        try { await loadEvents(true); } catch (err) { showError(err, $('filters')); }
      });
    });
    // Redraw the chart at its new width when the window is resized or turned.
    let resizeTimer = 0;
    window.addEventListener('resize', () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => {
        if (state.chart && !$('chart-figure').hidden) $('chart').replaceChildren(drawChart(state.chart.windows, state.chart.who));
      }, 100);
    });
    if (token()) {
      showSignedIn();
      loadEvents(false).catch((err) => showError(err));
    } else {
      $('token').focus();
    }
  });
})();
