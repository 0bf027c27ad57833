// activityd web console. Plain JavaScript, no build step, no dependencies.
// It talks only to the public /v1 API with the signed-in token, so it can
// never see more than that token allows. The token is kept in this tab's
// sessionStorage only.
//
// Views are addressed by the URL's fragment, so that every view can be
// shared, reloaded and reached with the back button:
//   #/?period=24h|7d|30d  or  #/?from=…&to=…   overview
//   #/events?user_id=&action=&status=&from=&to=&order=   events list
//   #/events/{id}                                        one event
//   #/users/{id}                                         a user's timeline
//   #/record                                             record an event
'use strict';

(function () {
  const TOKEN_KEY = 'activityd.token';
  const NEXT = { PENDING: 'IN_PROGRESS', IN_PROGRESS: 'DONE' };
  const NEXT_VERB = { IN_PROGRESS: 'Start', DONE: 'Mark done' };
  const STATUS_TEXT = { PENDING: 'Pending', IN_PROGRESS: 'In progress', DONE: 'Done' };
  const SVG = 'http://www.w3.org/2000/svg';
  const PERIODS = { '24h': 24 * 3600e3, '7d': 7 * 86400e3, '30d': 30 * 86400e3 };
  const PERIOD_TEXT = { '24h': 'the last 24 hours', '7d': 'the last 7 days', '30d': 'the last 30 days' };
  const FILTERS = ['user_id', 'action', 'status', 'from', 'to', 'order'];

  const $ = (id) => document.getElementById(id);
  const el = (tag, attrs, ...children) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'text') e.textContent = v;
      else if (k === 'class') e.className = v;
      else e.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  };
  const svg = (tag, attrs, text) => {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    return e;
  };

  // ---- state -----------------------------------------------------------------

  const state = {
    me: null,          // GET /v1/me, or {unknown: true} when the server has none
    actions: null,     // GET /v1/actions, or null when the server has none
    rendered: null,    // the fragment last rendered
    seq: 0,            // the latest load; older answers arriving late are dropped
    events: { query: null, cursor: null },
    user: { id: null, cursor: null, lastDay: null },
    chart: null,       // what was drawn, to redraw it at a new width
  };

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
    if (t) headers.Authorization = authorization(t);
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
    if (!res.ok) throw problemError(res, text, data);
    return data;
  }

  // authorization is the Authorization header for token t, in the schemes
  // the README teaches: Bearer for a JWT, Token for an API token.
  function authorization(t) {
    return (/^[\w-]+\.[\w-]+\.[\w-]*$/.test(t) ? 'Bearer ' : 'Token ') + t;
  }

  // problemError is the ApiError of a failed response: its problem
  // document (data, parsed from text), or what can be said without one.
  function problemError(res, text, data) {
    const p = data && typeof data === 'object' && !Array.isArray(data) ? data : {};
    return new ApiError({
      title: p.title || (res.status + ' ' + (res.statusText || 'Error')),
      status: p.status || res.status,
      detail: p.detail || (data === null && text ? text.slice(0, 300) : ''),
      errors: Array.isArray(p.errors) ? p.errors : [],
      type: p.type || '',
    }, res.status);
  }

  // optional calls an endpoint the server may not have yet: its answer, or
  // null when it is 404 (or 400 for a parameter it does not know).
  async function optional(path, statuses) {
    try {
      return await api('GET', path);
    } catch (e) {
      if (e instanceof ApiError && (statuses || [404]).includes(e.status)) return null;
      throw e;
    }
  }

  // ---- messages ------------------------------------------------------------

  function clearMessages() {
    $('problem').replaceChildren();
    $('notice').textContent = '';
    for (const e of document.querySelectorAll('[aria-invalid="true"]')) e.removeAttribute('aria-invalid');
    for (const e of document.querySelectorAll('.field-error')) e.textContent = '';
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
        ul.append(el('li', {}, el('span', { class: 'field-name', text: fe.field || '(request)' }), ': ' + (fe.message || '')));
        const input = form && fe.field ? form.elements.namedItem(fe.field.split(/[.[]/)[0]) : null;
        if (input && input.setAttribute) input.setAttribute('aria-invalid', 'true');
      }
      box.push(ul);
    }
    $('problem').replaceChildren(...box);
    if (err instanceof ApiError && err.status === 401 && token()) signOut(false);
  }

  // fieldError marks one input invalid with a message beside it.
  function fieldError(input, message) {
    input.setAttribute('aria-invalid', 'true');
    const box = $(input.id + '-error');
    if (box) box.textContent = message;
  }

  // ---- time ----------------------------------------------------------------

  const pad = (n) => String(n).padStart(2, '0');
  const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
  const hhmm = (d) => pad(d.getHours()) + ':' + pad(d.getMinutes());
  const dayShort = (d) => MONTHS[d.getMonth()] + ' ' + d.getDate();
  const dayKey = (d) => d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate());

  function fmtTime(iso) {
    const d = new Date(iso);
    if (isNaN(d.getTime())) return iso;
    return dayKey(d) + ' ' + hhmm(d) + ':' + pad(d.getSeconds());
  }
  function timeEl(iso, text) {
    return el('time', { datetime: iso, title: iso, text: text || fmtTime(iso) });
  }
  // dayTitle names a day the way a person would: Today, Yesterday, or the date.
  function dayTitle(d) {
    const today = new Date();
    const y = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
    if (dayKey(d) === dayKey(today)) return 'Today';
    if (dayKey(d) === dayKey(y)) return 'Yesterday';
    return DAYS[d.getDay()] + ', ' + dayShort(d) + (d.getFullYear() !== today.getFullYear() ? ' ' + d.getFullYear() : '');
  }
  function relative(iso) {
    const ms = Date.parse(iso) - Date.now();
    const abs = Math.abs(ms);
    const unit = abs < 3600e3 ? [60e3, 'minute'] : abs < 86400e3 ? [3600e3, 'hour'] : [86400e3, 'day'];
    const n = Math.max(1, Math.round(abs / unit[0]));
    const s = n + ' ' + unit[1] + (n === 1 ? '' : 's');
    return ms >= 0 ? 'in ' + s : s + ' ago';
  }

  // A datetime-local value (the person's time zone) ⇄ RFC 3339 in UTC.
  function localToRFC3339(v) {
    if (!v) return '';
    const d = new Date(v);
    return isNaN(d.getTime()) ? null : d.toISOString();
  }
  function rfc3339ToLocal(iso) {
    const d = new Date(iso);
    if (!iso || isNaN(d.getTime())) return '';
    return dayKey(d) + 'T' + hhmm(d) + ':' + pad(d.getSeconds());
  }

  const plural = (n, word) => n.toLocaleString('en') + ' ' + word + (n === 1 ? '' : 's');
  const isUserId = (v) => /^[1-9][0-9]{0,18}$/.test(v);

  async function busy(button, fn) {
    if (button) button.disabled = true;
    try { return await fn(); } finally { if (button) button.disabled = false; }
  }

  // ---- routing -------------------------------------------------------------

  function currentRoute() {
    const h = location.hash.replace(/^#/, '') || '/';
    const i = h.indexOf('?');
    const path = i < 0 ? h : h.slice(0, i);
    const params = new URLSearchParams(i < 0 ? '' : h.slice(i + 1));
    let m;
    if ((m = path.match(/^\/events\/([^/]+)$/))) return { view: 'event', id: decodeURIComponent(m[1]), params };
    if ((m = path.match(/^\/users\/([^/]+)$/))) return { view: 'user', id: decodeURIComponent(m[1]), params };
    if (path === '/events') return { view: 'events', params };
    if (path === '/record') return { view: 'record', params };
    return { view: 'overview', params };
  }

  // go shows the view at hash, as a new history entry (or in place of the
  // current one with replace); the same hash again is rendered again.
  function go(hash, replace) {
    if (location.hash !== hash && !(hash === '#/' && location.hash === '')) {
      history[replace ? 'replaceState' : 'pushState'](null, '', hash);
    }
    render(true);
  }

  const VIEWS = ['signin', 'overview', 'events', 'event', 'user', 'record'];
  const TITLES = { overview: 'Overview', events: 'Events', event: 'Event', user: 'User', record: 'Record an event', signin: 'Sign in' };

  function show(view) {
    for (const v of VIEWS) $('view-' + v).hidden = v !== view;
    for (const a of document.querySelectorAll('#nav a')) {
      const on = a.dataset.view === view || (view === 'event' && a.dataset.view === 'events') || (view === 'user' && a.dataset.view === 'events');
      if (on) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
    }
    document.title = TITLES[view] + ' · activityd';
  }

  // render shows the view the URL names (once per URL, unless forced).
  function render(force) {
    if (!token()) {
      show('signin');
      return;
    }
    if (!force && state.rendered === location.hash) return;
    const moved = state.rendered !== null && state.rendered !== location.hash;
    state.rendered = location.hash;
    const r = currentRoute();
    show(r.view);
    state.chart = null;
    const load = { overview: loadOverview, events: loadEventsView, event: loadEvent, user: loadUser, record: showRecord }[r.view];
    Promise.resolve(load(r)).catch((err) => showError(err));
    if (moved) $(r.view === 'event' ? 'event-h' : r.view + '-h').focus();
  }

  // ---- sign in / out ---------------------------------------------------------

  // whoAmI reads the principal: GET /v1/me, or (a server without it) a
  // cheap read that only a refused token fails with 401.
  async function whoAmI(tok) {
    try {
      return await api('GET', '/v1/me', undefined, tok);
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 404)) throw e;
    }
    try {
      await api('GET', '/v1/events?limit=1', undefined, tok);
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 403)) throw e;
    }
    return { unknown: true };
  }

  function renderWho() {
    const me = state.me || { unknown: true };
    $('nav').hidden = false;
    $('who').hidden = false;
    if (me.unknown) {
      $('who-name').textContent = 'Signed in';
      $('who-detail').textContent = '';
      return;
    }
    $('who-name').textContent = me.name || (me.kind === 'anonymous' ? 'Anonymous' : 'Signed in');
    const parts = [];
    if (me.user_id) parts.push('user ' + me.user_id);
    else if (me.admin || me.any_user) parts.push('admin, all users');
    else parts.push('no user');
    if (me.scopes && me.scopes.length) parts.push((me.scopes.length === 1 ? 'scope ' : 'scopes ') + me.scopes.join(', '));
    parts.push(me.expires_at ? 'expires ' + relative(me.expires_at) : 'never expires');
    const detail = $('who-detail');
    detail.textContent = parts.join(' · ');
    if (me.expires_at) detail.title = 'Expires at ' + fmtTime(me.expires_at);
  }

  function signOut(clearMsgs) {
    try { sessionStorage.removeItem(TOKEN_KEY); } catch (_) { /* storage unavailable */ }
    state.me = null;
    state.actions = null;
    state.rendered = null;
    state.chart = null;
    state.seq++;
    for (const id of ['events-body', 'timeline', 'event-body', 'event-step', 'chart', 'chart-body', 'by-action-body', 'top-users-body']) $(id).replaceChildren();
    for (const f of ['record', 'filters', 'signin']) $(f).reset();
    $('nav').hidden = true;
    $('who').hidden = true;
    show('signin');
    if (clearMsgs !== false) notify('Signed out. The token was removed from this tab.');
    $('token').focus();
  }

  async function signIn(ev) {
    ev.preventDefault();
    clearMessages();
    const form = ev.currentTarget;
    const input = form.elements.namedItem('token');
    const t = input.value.trim();
    if (!t) {
      input.setAttribute('aria-invalid', 'true');
      showError(new ApiError({ title: 'Token required', detail: 'Paste an API token to sign in.', errors: [{ field: 'token', message: 'is empty' }] }, 0));
      input.focus();
      return;
    }
    await busy(form.querySelector('button[type=submit]'), async () => {
      let me;
      try {
        me = await whoAmI(t);
      } catch (e) {
        if (e instanceof ApiError && e.status === 401) input.setAttribute('aria-invalid', 'true');
        showError(e);
        return;
      }
      sessionStorage.setItem(TOKEN_KEY, t);
      form.reset();
      await start(me);
      notify('Signed in' + (me.name ? ' as ' + me.name : '') + '.');
      const r = currentRoute();
      $(r.view === 'event' ? 'event-h' : r.view + '-h').focus();
    });
  }

  // start shows the console for the principal me.
  async function start(me) {
    state.me = me;
    renderWho();
    state.actions = await optional('/v1/actions').catch(() => null);
    const dl = $('actions');
    dl.replaceChildren(...((state.actions && state.actions.actions) || []).map((a) => el('option', { value: a })));
    state.rendered = null;
    render(true);
  }

  // ---- overview ----------------------------------------------------------------

  // periodOf reads the period from the URL: a preset, or a custom range.
  function periodOf(params) {
    const now = Date.now();
    const from = params.get('from'), to = params.get('to');
    if (from || to) {
      const f = from ? Date.parse(from) : NaN, t = to ? Date.parse(to) : now;
      if (!isNaN(f) && !isNaN(t) && f < t) {
        return { key: 'custom', from: new Date(f), to: new Date(t), text: fmtTime(new Date(f).toISOString()) + ' to ' + fmtTime(new Date(t).toISOString()) };
      }
    }
    const key = PERIODS[params.get('period')] ? params.get('period') : '24h';
    return { key, from: new Date(now - PERIODS[key]), to: new Date(now), text: PERIOD_TEXT[key] };
  }

  // countsIn reads every computed count whose window starts in [from, to):
  // pages are followed up to a bound.
  async function countsIn(from, to, extra) {
    const items = [];
    let nextWindow, cursor = null;
    for (let page = 0; page < 20; page++) {
      const q = new URLSearchParams({ from: from.toISOString(), to: to.toISOString(), order: 'asc', limit: '1000' });
      if (extra) for (const [k, v] of Object.entries(extra)) q.set(k, v);
      if (cursor) q.set('cursor', cursor);
      const res = await api('GET', '/v1/activity-counts?' + q.toString());
      items.push(...(res.items || []));
      if (res.next_window !== undefined) nextWindow = res.next_window;
      cursor = res.next_cursor;
      if (!cursor) break;
    }
    return { items, nextWindow };
  }

  async function loadOverview(r) {
    const p = periodOf(r.params);
    const seq = ++state.seq;
    const form = $('period');
    for (const input of form.elements.namedItem('period')) input.checked = input.value === p.key;
    $('custom-range').hidden = p.key !== 'custom';
    if (p.key === 'custom') {
      form.elements.namedItem('from').value = rfc3339ToLocal(p.from.toISOString());
      form.elements.namedItem('to').value = rfc3339ToLocal(p.to.toISOString());
    }
    $('overview-body').setAttribute('aria-busy', 'true');
    try {
      // With ?provisional=true the server adds the open window, estimated
      // from the events so far; one that cannot answers 400 for it.
      const live = p.to.getTime() >= Date.now() - 60e3;
      const [counts, any] = await Promise.all([
        (live ? countsIn(p.from, p.to, { provisional: 'true' }) : countsIn(p.from, p.to)).catch((e) => {
          if (live && e instanceof ApiError && e.status === 400) return countsIn(p.from, p.to);
          throw e;
        }),
        api('GET', '/v1/events?limit=1').catch(() => null),
      ]);
      if (seq !== state.seq) return;
      const final = { items: counts.items.filter((i) => !i.provisional) };
      const provisional = counts.items.filter((i) => i.provisional);
      const nextWindow = counts.nextWindow || null;
      renderOverview(p, final.items, provisional, nextWindow, any);
    } finally {
      if (seq === state.seq) $('overview-body').setAttribute('aria-busy', 'false');
    }
  }

  function renderOverview(p, items, provisional, nextWindow, any) {
    const all = items.concat(provisional);
    const fresh = any && (any.items || []).length === 0;
    $('getting-started').hidden = !fresh;
    $('overview-body').hidden = !!fresh;
    if (fresh) {
      const me = state.me || {};
      $('start-curl').textContent = 'curl -X POST ' + location.origin + '/v1/events \\\n  -H "Authorization: Token $TOKEN" -H "Content-Type: application/json" \\\n  -d \'{' +
        (me.user_id ? '' : '"user_id": 1, ') + '"action": "' + firstAction() + '"}\'';
    }
    const next = $('next-count');
    if (nextWindow && nextWindow.end) {
      const end = new Date(nextWindow.end);
      next.hidden = false;
      next.replaceChildren('Next count at ', el('strong', {}, timeEl(nextWindow.end, hhmm(end))),
        ' (' + relative(nextWindow.end) + ')', dayKey(end) === dayKey(new Date()) ? '' : ' on ' + dayShort(end), '.');
    } else {
      next.hidden = true;
    }

    // Totals, by action and by user.
    let total = 0;
    const byAction = new Map(), byUser = new Map();
    for (const it of all) {
      total += it.total;
      byUser.set(it.user_id, (byUser.get(it.user_id) || 0) + it.total);
      for (const [a, n] of Object.entries(it.by_action || {})) byAction.set(a, (byAction.get(a) || 0) + n);
    }
    $('kpi-events').textContent = total.toLocaleString('en');
    $('kpi-users').textContent = byUser.size.toLocaleString('en');
    $('kpi-users-label').textContent = byUser.size === 1 ? 'active user' : 'active users';
    $('kpi-actions').textContent = byAction.size.toLocaleString('en');
    barTable('by-action', [...byAction.entries()], total, (a) =>
      el('a', { href: '#/events?' + new URLSearchParams({ action: a, from: p.from.toISOString() }).toString(), text: a }));
    const admin = !state.me || state.me.unknown || state.me.admin || state.me.any_user || !state.me.user_id;
    $('top-users-card').hidden = !admin;
    barTable('top-users', [...byUser.entries()].slice(0), total, (u) => el('a', { href: '#/users/' + u, text: 'User ' + u }), 8);

    const buckets = bucketize(p, items, provisional, nextWindow);
    state.chart = { p, buckets };
    drawChartInto(p, buckets);
    const empty = $('chart-empty');
    empty.hidden = total > 0;
    if (total === 0) {
      empty.textContent = fresh ? 'Your first events will be charted here.'
        : nextWindow && nextWindow.end ? 'No counted activity in ' + p.text + ' yet. Events recorded now are counted at ' + hhmm(new Date(nextWindow.end)) + '.'
          : 'No counted activity in ' + p.text + '. Counts appear when a window of the counting schedule closes.';
    }
  }

  function firstAction() {
    const list = state.actions && state.actions.actions;
    return list && list.length ? (list.includes('login') ? 'login' : list[0]) : 'login';
  }

  // barTable fills a table of name, number and a bar of its share.
  function barTable(id, entries, total, name, limit) {
    entries.sort((a, b) => b[1] - a[1] || String(a[0]).localeCompare(String(b[0])));
    if (limit) entries = entries.slice(0, limit);
    const max = Math.max(1, ...entries.map((e) => e[1]));
    $(id + '-body').replaceChildren(...entries.map(([k, n]) => {
      const fill = el('span', { class: 'share-fill' });
      fill.style.width = Math.max(2, (n / max) * 100).toFixed(1) + '%'; // CSSOM, which the CSP allows
      const bar = el('span', { class: 'share' }, fill);
      return el('tr', { 'data-key': k },
        el('th', { scope: 'row' }, name(k)),
        el('td', { class: 'num', text: n.toLocaleString('en') }),
        el('td', { class: 'share-cell', 'aria-hidden': 'true' }, bar));
    }));
    $(id).hidden = entries.length === 0;
    $(id + '-empty').hidden = entries.length > 0;
  }

  // Bucket sizes the chart may use: it takes the smallest that gives at
  // most ~36 bars, and never one shorter than a counting window.
  const STEPS = [60e3, 5 * 60e3, 15 * 60e3, 30 * 60e3, 3600e3, 2 * 3600e3, 3 * 3600e3, 4 * 3600e3, 6 * 3600e3, 12 * 3600e3, 86400e3, 7 * 86400e3];

  function bucketize(p, items, provisional, nextWindow) {
    const span = p.to - p.from;
    let win = nextWindow ? Date.parse(nextWindow.end) - Date.parse(nextWindow.start) || 0 : 0;
    for (const it of items.concat(provisional)) win = Math.max(win, Date.parse(it.window_end) - Date.parse(it.window_start));
    const want = Math.max(span / 36, win);
    const step = STEPS.find((s) => s >= want) || STEPS[STEPS.length - 1];
    // Buckets start at local midnight plus whole steps (for steps of a day
    // or less), so that labels read as round times.
    const tz = new Date(p.from).getTimezoneOffset() * 60e3;
    const align = (t) => Math.floor((t - tz) / step) * step + tz;
    const first = align(p.from.getTime()), last = align(Math.max(p.from.getTime(), p.to.getTime() - 1));
    const buckets = [];
    for (let t = first; t <= last && buckets.length < 400; t += step) buckets.push({ start: t, end: t + step, final: 0, open: 0, by: {} });
    const put = (it, key) => {
      const t = Date.parse(it.window_start);
      let b = buckets.find((x) => t >= x.start && t < x.end);
      if (!b && key === 'open') b = buckets[buckets.length - 1];
      if (!b) return;
      b[key] += it.total;
      for (const [a, n] of Object.entries(it.by_action || {})) b.by[a] = (b.by[a] || 0) + n;
    };
    for (const it of items) put(it, 'final');
    for (const it of provisional) put(it, 'open');
    return { step, buckets, window: win };
  }

  function drawChartInto(p, data) {
    const box = $('chart');
    box.replaceChildren(drawChart(p, data, box.clientWidth || 640));
    $('chart-caption').textContent = 'Events over ' + p.text;
    $('chart-table-caption').textContent = 'Events over ' + p.text;
    $('chart-body').replaceChildren(...data.buckets.filter((b) => b.final + b.open > 0).map((b) => el('tr', {},
      el('td', {}, timeEl(new Date(b.start).toISOString())), el('td', {}, timeEl(new Date(b.end).toISOString())),
      el('td', { text: String(b.final + b.open) }), el('td', { text: b.open ? 'no (window still open)' : 'yes' }))));
  }

  function tickLabel(t, step, prev) {
    const d = new Date(t);
    if (step >= 86400e3) return [dayShort(d), ''];
    const newDay = prev === null || dayKey(new Date(prev)) !== dayKey(d);
    return [hhmm(d), newDay ? dayShort(d) : ''];
  }

  // drawChart draws one bar per bucket over the whole period (empty buckets
  // included, so that the x axis is time), the not-final part of the open
  // window dashed on top, and time labels centred under their bars.
  function drawChart(p, data, width) {
    const W = Math.round(Math.min(1100, Math.max(300, width)));
    const H = W < 500 ? 200 : 240, left = 36, right = 8, top = 22, bottom = 42;
    const bs = data.buckets;
    const max = Math.max(1, ...bs.map((b) => b.final + b.open));
    const ticks = niceTicks(max);
    const ymax = ticks[ticks.length - 1];
    const plotW = W - left - right, plotH = H - top - bottom;
    const slot = plotW / bs.length;
    const barW = Math.max(1.5, Math.min(40, slot * 0.72));
    const total = bs.reduce((s, b) => s + b.final + b.open, 0);
    const open = bs.reduce((s, b) => s + b.open, 0);
    const root = svg('svg', {
      viewBox: '0 0 ' + W + ' ' + H, width: W, height: H, role: 'img',
      'aria-label': 'Bar chart of ' + plural(total, 'event') + ' over ' + p.text + (open ? ', of which ' + open + ' not final yet' : '') + '. The same data is in the table below.',
    });
    const y = (v) => top + plotH - (v / ymax) * plotH;
    for (const v of ticks) {
      root.append(svg('line', { class: v === 0 ? 'axis' : 'grid-line', x1: left, x2: W - right, y1: y(v), y2: y(v) }));
      root.append(svg('text', { class: 'tick', x: left - 6, y: y(v) + 4, 'text-anchor': 'end' }, String(v)));
    }
    // Labels: every k-th bar, k such that labels do not overlap; over
    // several days in buckets shorter than a day, one label a day, under
    // the bar that starts at midnight.
    const labelW = data.step >= 86400e3 ? 48 : 40;
    const every = Math.max(1, Math.ceil(labelW / slot));
    const byDay = data.step < 86400e3 && p.to - p.from >= 2 * 86400e3;
    const perDay = Math.round(86400e3 / data.step);
    const dayEvery = Math.max(1, Math.ceil(labelW / (slot * perDay)));
    let prev = null, days = 0;
    const labelled = (b, i) => {
      if (!byDay) return i % every === 0;
      const d = new Date(b.start);
      return d.getHours() === 0 && d.getMinutes() === 0 && days++ % dayEvery === 0;
    };
    bs.forEach((b, i) => {
      const cx = left + slot * i + slot / 2;
      const x = cx - barW / 2;
      const title = fmtTime(new Date(b.start).toISOString()) + ' to ' + fmtTime(new Date(b.end).toISOString()) + ': ' + plural(b.final + b.open, 'event') +
        (b.open ? ' (' + b.open + ' not final)' : '');
      const g = svg('g', { class: 'slot', 'data-start': new Date(b.start).toISOString(), 'data-final': b.final, 'data-open': b.open });
      g.append(svg('title', {}, title));
      g.append(svg('rect', { class: 'hit', x: left + slot * i, y: top, width: slot, height: plotH }));
      if (b.final > 0) {
        const h = Math.max(1.5, (b.final / ymax) * plotH);
        g.append(svg('rect', { class: 'bar', x: x.toFixed(1), y: (y(0) - h).toFixed(1), width: barW.toFixed(1), height: h.toFixed(1), rx: Math.min(3, barW / 4).toFixed(1), 'data-total': b.final }));
      }
      if (b.open > 0) {
        const base = y(b.final);
        const h = Math.max(3, (b.open / ymax) * plotH);
        g.append(svg('rect', { class: 'bar provisional', x: x.toFixed(1), y: (base - h).toFixed(1), width: barW.toFixed(1), height: h.toFixed(1), rx: Math.min(3, barW / 4).toFixed(1), 'data-total': b.open }));
        const lx = Math.min(W - right - 30, Math.max(left + 30, cx));
        g.append(svg('text', { class: 'open-label', x: lx.toFixed(1), y: (base - h - 6).toFixed(1), 'text-anchor': 'middle' }, 'not final'));
      } else if (b.final > 0 && slot >= 22) {
        g.append(svg('text', { class: 'value', x: cx.toFixed(1), y: (y(b.final) - 5).toFixed(1), 'text-anchor': 'middle' }, String(b.final)));
      }
      root.append(g);
      if (labelled(b, i)) {
        const [l1, l2] = byDay ? [dayShort(new Date(b.start)), ''] : tickLabel(b.start, data.step, prev);
        prev = b.start;
        root.append(svg('line', { class: 'axis', x1: cx, x2: cx, y1: y(0), y2: y(0) + 4 }));
        root.append(svg('text', { class: 'tick x-label', x: cx.toFixed(1), y: H - bottom + 17, 'text-anchor': 'middle' }, l1));
        if (l2) root.append(svg('text', { class: 'tick day', x: cx.toFixed(1), y: H - bottom + 32, 'text-anchor': 'middle' }, l2));
      }
    });
    return root;
  }

  function niceTicks(max) {
    const raw = max / 4;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = Math.max(1, [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw));
    const ticks = [];
    for (let v = 0; v < max + step; v += step) ticks.push(Math.round(v));
    return ticks;
  }

  function periodChanged(ev) {
    const v = ev.target.value;
    if (ev.target.name !== 'period') return;
    if (v === 'custom') {
      $('custom-range').hidden = false;
      const f = $('period');
      const p = periodOf(currentRoute().params);
      f.elements.namedItem('from').value = rfc3339ToLocal(p.from.toISOString());
      f.elements.namedItem('to').value = rfc3339ToLocal(p.to.toISOString());
      f.elements.namedItem('from').focus();
      return;
    }
    go('#/?period=' + v);
  }

  function customPeriod(ev) {
    ev.preventDefault();
    clearMessages();
    const f = ev.currentTarget;
    const from = localToRFC3339(f.elements.namedItem('from').value);
    const to = localToRFC3339(f.elements.namedItem('to').value) || new Date().toISOString();
    if (!from) { fieldError(f.elements.namedItem('from'), 'Choose a start.'); showError(new ApiError({ title: 'Choose when the period starts', errors: [] }, 0)); return; }
    if (Date.parse(from) >= Date.parse(to)) { f.elements.namedItem('to').setAttribute('aria-invalid', 'true'); showError(new ApiError({ title: 'The period ends before it starts', errors: [] }, 0)); return; }
    go('#/?' + new URLSearchParams({ from, to }).toString());
  }

  // ---- events list -------------------------------------------------------------

  // filtersFromForm reads the filter form into URL parameters (only the set
  // ones, times in UTC), or throws with the field to blame.
  function filtersFromForm(f) {
    const q = new URLSearchParams();
    const user = f.elements.namedItem('user_id');
    if (user.value.trim()) {
      if (!isUserId(user.value.trim())) {
        user.setAttribute('aria-invalid', 'true');
        throw new ApiError({ title: 'Invalid user id', detail: 'A user id is a positive whole number.', errors: [{ field: 'user_id', message: 'must be a positive integer, not "' + user.value.trim() + '"' }] }, 0);
      }
      q.set('user_id', user.value.trim());
    }
    const action = f.elements.namedItem('action').value.split(',').map((s) => s.trim()).filter(Boolean).join(',');
    if (action) q.set('action', action);
    const status = f.elements.namedItem('status').value;
    if (status) q.set('status', status);
    for (const k of ['from', 'to']) {
      const v = localToRFC3339(f.elements.namedItem(k).value);
      if (v === null) throw new ApiError({ title: 'Invalid date', errors: [{ field: k, message: 'is not a date and time' }] }, 0);
      if (v) q.set(k, v);
    }
    if (f.elements.namedItem('order').value === 'asc') q.set('order', 'asc');
    return q;
  }

  function formFromFilters(f, params) {
    f.elements.namedItem('user_id').value = params.get('user_id') || '';
    f.elements.namedItem('action').value = params.getAll('action').join(',');
    f.elements.namedItem('status').value = params.get('status') || '';
    f.elements.namedItem('from').value = rfc3339ToLocal(params.get('from'));
    f.elements.namedItem('to').value = rfc3339ToLocal(params.get('to'));
    f.elements.namedItem('order').value = params.get('order') === 'asc' ? 'asc' : 'desc';
  }

  async function loadEventsView(r) {
    formFromFilters($('filters'), r.params);
    const active = FILTERS.filter((k) => k !== 'order' && r.params.get(k)).length;
    $('filter-count').textContent = active ? ' (' + active + ' set)' : '';
    const box = $('filter-box');
    if (active || !matchMedia('(max-width: 640px)').matches) box.open = true; else box.open = false;
    const q = new URLSearchParams();
    for (const k of FILTERS) for (const v of r.params.getAll(k)) if (v) q.append(k, v);
    state.events.query = q.toString();
    state.events.cursor = null;
    $('export-status').textContent = ''; // it spoke of the previous filters
    $('events-caption').textContent = describeFilters(r.params);
    await loadEvents(false);
  }

  function describeFilters(params) {
    const parts = [];
    if (params.get('user_id')) parts.push('user ' + params.get('user_id'));
    if (params.get('action')) parts.push('action ' + params.getAll('action').join(', '));
    if (params.get('status')) parts.push(STATUS_TEXT[params.get('status')] || params.get('status'));
    if (params.get('from')) parts.push('from ' + fmtTime(params.get('from')));
    if (params.get('to')) parts.push('before ' + fmtTime(params.get('to')));
    return 'Events' + (parts.length ? ': ' + parts.join(', ') : '') + (params.get('order') === 'asc' ? ', oldest first' : ', newest first');
  }

  async function loadEvents(append) {
    const q = new URLSearchParams(state.events.query || '');
    q.set('limit', '25');
    if (append && state.events.cursor) q.set('cursor', state.events.cursor);
    const seq = append ? state.seq : ++state.seq;
    $('events').setAttribute('aria-busy', 'true');
    let page;
    try {
      page = await api('GET', '/v1/events?' + q.toString());
    } catch (e) {
      if (seq === state.seq) {
        $('events-body').replaceChildren();
        $('events-summary').textContent = 'The events could not be loaded.';
        $('events').setAttribute('aria-busy', 'false');
      }
      throw e;
    }
    if (seq !== state.seq) return page;
    const body = $('events-body');
    if (!append) body.replaceChildren();
    for (const e of page.items || []) body.append(eventRow(e));
    state.events.cursor = page.next_cursor || null;
    $('more').hidden = !state.events.cursor;
    const n = body.children.length;
    const filtered = [...new URLSearchParams(state.events.query || '').keys()].some((k) => k !== 'order');
    $('events').hidden = n === 0;
    const empty = $('events-empty');
    empty.hidden = n > 0;
    if (n === 0) {
      empty.replaceChildren(...(filtered
        ? [el('p', { text: 'No events match these filters.' }), el('p', {}, el('a', { href: '#/events', text: 'Show all events' }))]
        : [el('p', { class: 'big', text: 'No events yet.' }),
          el('p', {}, 'Events appear here as soon as they are recorded. ', el('a', { href: '#/record', text: 'Record the first one' }), ' or send one to ', el('code', { text: 'POST /v1/events' }), '.')]));
    }
    $('events-summary').textContent = n === 0 ? '' : 'Showing ' + plural(n, 'event') + (state.events.cursor ? '; more available.' : '.');
    $('events').setAttribute('aria-busy', 'false');
    return page;
  }

  // exportView downloads the export of the events view as it is filtered
  // and ordered (GET /v1/events/export): fetched with the token in the
  // Authorization header, never in a URL; saved from a Blob only when it
  // ends with its completion line, so that a cut export is never saved as
  // if it were whole.
  async function exportView(format) {
    const q = new URLSearchParams(state.events.query || '');
    if (!q.get('order')) q.set('order', 'desc'); // newest first, as the view shows them
    q.set('format', format);
    const headers = { Accept: (format === 'csv' ? 'text/csv' : 'application/x-ndjson') + ', application/problem+json' };
    const t = token();
    if (t) headers.Authorization = authorization(t);
    const status = $('export-status');
    status.textContent = 'Exporting ' + format.toUpperCase() + '…';
    let res, blob;
    try {
      res = await fetch('/v1/events/export?' + q.toString(), { headers, cache: 'no-store', credentials: 'omit' });
      blob = await res.blob();
    } catch (e) {
      status.textContent = '';
      throw new ApiError({ title: 'The export failed', detail: 'The service could not be reached, or the connection was cut (' + e.message + ').' }, 0);
    }
    if (!res.ok) {
      status.textContent = '';
      const text = await blob.text();
      let data = null;
      try { data = JSON.parse(text); } catch (_) { data = null; }
      throw problemError(res, text, data);
    }
    const tail = await blob.slice(Math.max(0, blob.size - 100)).text();
    const done = /(?:^|\n)(?:\{"export_complete":true,"count":(\d+)\}|#export_complete,(\d+))\r?\n$/.exec(tail);
    if (!done) {
      status.textContent = '';
      throw new ApiError({ title: 'The export was cut short', detail: 'It ended before its completion line, so it was not saved. Try again.' }, 0);
    }
    const m = /filename="([^"]+)"/.exec(res.headers.get('Content-Disposition') || '');
    const name = m ? m[1] : 'activityd-events.' + format;
    const href = URL.createObjectURL(blob);
    const a = el('a', { href, download: name, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(href), 60e3);
    status.textContent = 'Exported ' + plural(Number(done[1] || done[2]), 'event') + ' to ' + name + '.';
  }

  function eventRow(e) {
    const meta = e.metadata && Object.keys(e.metadata).length ? JSON.stringify(e.metadata) : '';
    const cell = (label, ...c) => el('td', { 'data-label': label, role: 'cell' }, ...c);
    const tr = el('tr', { role: 'row', 'data-id': e.id, 'data-status': e.status, 'data-action': e.action, 'data-user': e.user_id, class: 'clickable' },
      cell('Occurred', el('a', { href: '#/events/' + encodeURIComponent(e.id), class: 'row-link' }, timeEl(e.occurred_at))),
      cell('User', el('a', { href: '#/users/' + e.user_id, text: String(e.user_id) })),
      cell('Action', el('span', { class: 'action', text: e.action })),
      cell('Status', statusBadge(e.status)),
      el('td', { 'data-label': 'Metadata', role: 'cell', class: 'meta', text: meta }));
    // A click anywhere on the row opens the event (the link is the keyboard way).
    tr.addEventListener('click', (ev) => {
      if (ev.target.closest('a, button') || String(window.getSelection()).length) return;
      go('#/events/' + encodeURIComponent(e.id));
    });
    return tr;
  }

  function statusBadge(s) {
    return el('span', { class: 'status status-' + s, 'data-status': s, text: STATUS_TEXT[s] || s });
  }

  function applyFilters(ev) {
    ev.preventDefault();
    clearMessages();
    try {
      const q = filtersFromForm(ev.currentTarget);
      go('#/events' + (q.toString() ? '?' + q.toString() : ''));
    } catch (err) {
      showError(err, ev.currentTarget);
    }
  }

  // ---- one event ------------------------------------------------------------------

  async function loadEvent(r) {
    const seq = ++state.seq;
    $('event-h').textContent = 'Event';
    $('event-step').replaceChildren();
    $('event-body').replaceChildren(el('p', { class: 'hint', text: 'Loading…' }));
    let e;
    try {
      e = await api('GET', '/v1/events/' + encodeURIComponent(r.id));
    } catch (err) {
      if (seq !== state.seq) return;
      if (err instanceof ApiError && err.status === 404) {
        $('event-h').textContent = 'Event not found';
        $('event-body').replaceChildren(el('div', { class: 'card empty-state' },
          el('p', { text: 'There is no event ' + r.id + ', or it is not one this token may read.' }),
          el('p', {}, el('a', { href: '#/events', text: 'Back to events' }))));
        return;
      }
      $('event-body').replaceChildren();
      throw err;
    }
    if (seq !== state.seq) return;
    renderEvent(e);
  }

  function renderEvent(e) {
    $('event-h').replaceChildren(el('span', { class: 'action', text: e.action }), ' ', el('span', { class: 'h-sub', text: 'by user ' + e.user_id }));
    const next = NEXT[e.status];
    const step = $('event-step');
    step.replaceChildren(statusBadge(e.status));
    if (next) {
      const b = el('button', { type: 'button', id: 'advance', class: 'advance', 'data-next': next, text: NEXT_VERB[next] + ' → ' + STATUS_TEXT[next] });
      b.addEventListener('click', () => advance(e, next, b));
      step.append(b);
    } else {
      step.append(el('span', { class: 'hint', text: 'Finished: no further step.' }));
    }
    const dl = el('dl', { class: 'facts' });
    const fact = (k, ...v) => dl.append(el('div', {}, el('dt', { text: k }), el('dd', {}, ...v)));
    fact('Event id', el('code', { text: e.id }));
    fact('User', el('a', { href: '#/users/' + e.user_id, text: 'User ' + e.user_id + ' — timeline' }));
    fact('Occurred', timeEl(e.occurred_at));
    fact('Recorded', timeEl(e.recorded_at));
    fact('Last change', timeEl(e.updated_at));
    if (e.legacy) fact('Legacy id', el('span', { class: 'legacy', text: e.legacy.system + ' #' + e.legacy.id }));
    const meta = e.metadata && Object.keys(e.metadata).length
      ? el('pre', { class: 'json', tabindex: '0', 'aria-label': 'Metadata as JSON' }, el('code', { text: JSON.stringify(e.metadata, null, 2) }))
      : el('p', { class: 'hint', text: 'No metadata.' });
    const hist = el('ol', { class: 'history' });
    for (const h of e.status_history || []) {
      hist.append(el('li', { 'data-to': h.to },
        el('span', { class: 'dot', 'aria-hidden': 'true' }),
        el('div', {}, el('p', { class: 'h-line' }, h.from ? STATUS_TEXT[h.from] + ' → ' : 'Recorded as ', el('strong', { text: STATUS_TEXT[h.to] || h.to })),
          el('p', { class: 'hint' }, timeEl(h.at), h.by ? ' by ' + h.by : ''))));
    }
    $('event-body').replaceChildren(
      el('section', { class: 'card', 'aria-labelledby': 'facts-h' }, el('h2', { id: 'facts-h', text: 'Details' }), dl),
      el('section', { class: 'card', 'aria-labelledby': 'meta-h' }, el('h2', { id: 'meta-h', text: 'Metadata' }), meta),
      el('section', { class: 'card', 'aria-labelledby': 'history-h' }, el('h2', { id: 'history-h', text: 'Status history' }), hist));
  }

  async function advance(e, next, button) {
    clearMessages();
    await busy(button, async () => {
      try {
        await api('PATCH', '/v1/events/' + encodeURIComponent(e.id), { status: next });
        const fresh = await api('GET', '/v1/events/' + encodeURIComponent(e.id));
        renderEvent(fresh);
        notify('This ' + fresh.action + ' event is now ' + (STATUS_TEXT[fresh.status] || fresh.status).toLowerCase() + '.');
        const b = $('advance');
        (b || $('event-h')).focus();
      } catch (err) {
        showError(err);
      }
    });
  }

  // ---- a user's timeline -------------------------------------------------------

  async function loadUser(r) {
    const id = r.id;
    state.user = { id, cursor: null, lastDay: null, count: 0 };
    $('user-h').textContent = 'User ' + id;
    $('user-filter-link').href = '#/events?user_id=' + encodeURIComponent(id);
    $('timeline').replaceChildren();
    $('user-more').hidden = true;
    $('user-summary').textContent = '';
    if (!isUserId(id)) {
      $('timeline').replaceChildren(el('div', { class: 'card empty-state' }, el('p', { text: '“' + id + '” is not a user id: user ids are positive whole numbers.' })));
      return;
    }
    await loadTimeline(false);
  }

  async function loadTimeline(append) {
    const u = state.user;
    const q = new URLSearchParams({ limit: '50', time_field: 'occurred_at' });
    if (append && u.cursor) q.set('cursor', u.cursor);
    const seq = append ? state.seq : ++state.seq;
    $('timeline').setAttribute('aria-busy', 'true');
    let page;
    try {
      page = await api('GET', '/v1/users/' + encodeURIComponent(u.id) + '/events?' + q.toString());
    } finally {
      if (seq === state.seq) $('timeline').setAttribute('aria-busy', 'false');
    }
    if (seq !== state.seq) return;
    const tl = $('timeline');
    let list = tl.lastElementChild && tl.lastElementChild.querySelector('ol');
    for (const e of page.items || []) {
      const d = new Date(e.occurred_at);
      const key = dayKey(d);
      if (key !== u.lastDay) {
        u.lastDay = key;
        const hid = 'day-' + key;
        list = el('ol', { class: 'day-events', 'aria-labelledby': hid });
        tl.append(el('section', { class: 'day', 'data-day': key }, el('h2', { id: hid, class: 'day-h', text: dayTitle(d) }), list));
      }
      const meta = e.metadata && Object.keys(e.metadata).length ? Object.entries(e.metadata).slice(0, 3).map(([k, v]) => k + ': ' + (typeof v === 'string' ? v : JSON.stringify(v))).join(' · ') : '';
      list.append(el('li', { class: 'tl-item', 'data-id': e.id, 'data-action': e.action },
        timeEl(e.occurred_at, hhmm(d)),
        el('a', { href: '#/events/' + encodeURIComponent(e.id), class: 'action', text: e.action }),
        statusBadge(e.status),
        meta ? el('span', { class: 'tl-meta', text: meta }) : null));
      u.count++;
    }
    u.cursor = page.next_cursor || null;
    $('user-more').hidden = !u.cursor;
    if (u.count === 0) {
      tl.replaceChildren(el('div', { class: 'card empty-state' }, el('p', { text: 'User ' + u.id + ' has no events yet' + (state.me && state.me.user_id && String(state.me.user_id) !== u.id ? ', or none this token may read' : '') + '.' })));
    }
    $('user-summary').textContent = u.count ? plural(u.count, 'event') + ', newest first' + (u.cursor ? '; older ones below.' : '.') : '';
  }

  // ---- record ------------------------------------------------------------------

  // needsUser is true when the principal is bound to no user, so that the
  // user id must be given.
  const needsUser = () => !!(state.me && !state.me.unknown && !state.me.user_id);

  function showRecord() {
    const required = needsUser();
    const input = $('rec-user');
    input.required = required;
    if (required) input.setAttribute('aria-required', 'true'); else input.removeAttribute('aria-required');
    $('rec-user-opt').textContent = required ? '(required)' : '(optional: your own)';
    $('rec-user-hint').textContent = required
      ? 'This credential is bound to no user, so say whose event it is.'
      : state.me && state.me.user_id ? 'Leave empty to record for yourself, user ' + state.me.user_id + '.' : '';
    // The action: a choice from the service's vocabulary, or free text when
    // it accepts any action (or cannot say which).
    const field = $('rec-action-field');
    const old = $('rec-action');
    const list = (state.actions && state.actions.actions) || [];
    const free = !state.actions || state.actions.any || list.length === 0;
    let ctl;
    if (free) {
      ctl = el('input', { id: 'rec-action', name: 'action', type: 'text', list: 'actions', autocomplete: 'off', spellcheck: 'false', required: true, 'aria-describedby': 'rec-action-hint rec-action-error' });
      $('rec-action-hint').textContent = list.length ? 'For example ' + list.slice(0, 4).join(', ') + '; any action is accepted.' : 'A word such as login, upload_file or deleted.';
    } else {
      ctl = el('select', { id: 'rec-action', name: 'action', required: true, 'aria-describedby': 'rec-action-hint rec-action-error' },
        el('option', { value: '', text: 'Choose an action…' }), ...list.map((a) => el('option', { value: a, text: a })));
      $('rec-action-hint').textContent = 'One of the ' + list.length + ' actions this service accepts.';
    }
    if (old.tagName !== ctl.tagName || old.childElementCount !== ctl.childElementCount) {
      ctl.value = '';
      field.replaceChild(ctl, old);
    }
  }

  async function record(ev) {
    ev.preventDefault();
    clearMessages();
    const form = ev.currentTarget;
    const body = {};
    const bad = [];
    const user = form.elements.namedItem('user_id');
    const u = user.value.trim();
    if (u === '' && needsUser()) bad.push([user, 'Required: this credential is bound to no user, so give the user id.']);
    else if (u !== '' && !isUserId(u)) bad.push([user, 'A user id is a positive whole number.']);
    else if (u !== '') body.user_id = Number(u);
    const action = form.elements.namedItem('action');
    if (!action.value.trim()) bad.push([action, 'Choose an action.']);
    else body.action = action.value.trim();
    const occurred = localToRFC3339(form.elements.namedItem('occurred_at').value);
    if (occurred) body.occurred_at = occurred;
    const metaInput = form.elements.namedItem('metadata');
    if (metaInput.value.trim()) {
      try {
        body.metadata = JSON.parse(metaInput.value);
        if (!body.metadata || typeof body.metadata !== 'object' || Array.isArray(body.metadata)) throw new Error('not an object');
      } catch (e) {
        bad.push([metaInput, 'Metadata must be a JSON object, such as {"device": "Chrome"}.']);
      }
    }
    if (bad.length) {
      for (const [input, msg] of bad) fieldError(input, msg);
      showError(new ApiError({ title: 'Check the form', detail: bad.length === 1 ? bad[0][1] : 'Some fields need attention.', errors: [] }, 0));
      bad[0][0].focus();
      return;
    }
    await busy(form.querySelector('button[type=submit]'), async () => {
      try {
        const created = await api('POST', '/v1/events', body);
        form.reset();
        $('notice').replaceChildren('Recorded ' + created.action + ' for user ' + created.user_id + '. ',
          el('a', { href: '#/events/' + encodeURIComponent(created.id), text: 'Open it' }));
      } catch (err) {
        showError(err, form);
        if (err instanceof ApiError) {
          for (const fe of err.problem.errors || []) {
            const input = fe.field && form.elements.namedItem(fe.field.split(/[.[]/)[0]);
            if (input && input.id) fieldError(input, fe.message || 'Invalid.');
          }
        }
      }
    });
  }

  // ---- wiring ----------------------------------------------------------------

  document.addEventListener('DOMContentLoaded', () => {
    let tz = '';
    try { tz = Intl.DateTimeFormat().resolvedOptions().timeZone || ''; } catch (_) { tz = ''; }
    $('tz-hint').textContent = 'Times are in your time zone' + (tz ? ' (' + tz + ')' : '') + '; hover one for UTC.';
    $('signin').addEventListener('submit', signIn);
    $('signout').addEventListener('click', () => { clearMessages(); signOut(); });
    $('filters').addEventListener('submit', applyFilters);
    $('f-clear').addEventListener('click', () => { clearMessages(); go('#/events'); });
    for (const b of document.querySelectorAll('#export button[data-format]')) {
      b.addEventListener('click', async () => {
        clearMessages();
        await busy(b, async () => {
          try { await exportView(b.dataset.format); } catch (err) { showError(err); }
        });
      });
    }
    $('record').addEventListener('submit', record);
    $('period').addEventListener('change', periodChanged);
    $('period').addEventListener('submit', customPeriod);
    $('more').addEventListener('click', async (ev) => {
      clearMessages();
      await busy(ev.currentTarget, async () => {
        try { await loadEvents(true); } catch (err) { showError(err, $('filters')); }
      });
    });
    $('user-more').addEventListener('click', async (ev) => {
      clearMessages();
      await busy(ev.currentTarget, async () => {
        try { await loadTimeline(true); } catch (err) { showError(err); }
      });
    });
    // Links and the back button change the URL; render follows it.
    window.addEventListener('popstate', () => { clearMessages(); render(false); });
    window.addEventListener('hashchange', () => render(false));
    // Redraw the chart at its new width when the window is resized or turned.
    let resizeTimer = 0;
    window.addEventListener('resize', () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => {
        if (state.chart && !$('view-overview').hidden) drawChartInto(state.chart.p, state.chart.buckets);
      }, 100);
    });
    if (token()) {
      whoAmI().then(start, (err) => {
        if (err instanceof ApiError && err.status === 401) {
          signOut(false);
          showError(err);
          return;
        }
        showError(err);
        start({ unknown: true });
      });
    } else {
      show('signin');
      $('token').focus();
    }
  });
})();
