// scenefarm's pages: rendered here from the JSON API under /api/ (docs/api.md, docs/ui.md).
// No framework and nothing from another origin. Every value from the API reaches the page as
// text (textContent, attributes set one by one), never as markup.
'use strict';

(function () {
  const REFRESH_MS = 3000;
  const PAGE_SIZE = 50;
  const MAX_VIEW_SCENES = 48;  // run page: scenes whose frames are fetched through /view
  const params = new URLSearchParams(location.search);
  const queue = params.get('queue') || 'scenes';

  // ---- DOM helpers --------------------------------------------------------------------------
  // el('td', {class: 'num', 'data-x': v}, child, 'text', ...): strings become text nodes.
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'onclick') e.addEventListener('click', v);
      else if (k === 'onsubmit') e.addEventListener('submit', v);
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    append(e, children);
    return e;
  }
  function append(e, children) {
    for (const c of children.flat(Infinity)) {
      if (c === undefined || c === null || c === false) continue;
      e.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }
  function replace(e, ...children) {
    e.replaceChildren();
    return append(e, children);
  }
  function text(v, fallback) {
    if (v === undefined || v === null || v === '') return fallback === undefined ? '—' : fallback;
    return String(v);
  }
  function num(v) { return typeof v === 'number' && isFinite(v) ? v : 0; }
  function seg(s) { return encodeURIComponent(String(s)); }
  function withQueue(path) {
    if (queue === 'scenes') return path;
    return path + (path.includes('?') ? '&' : '?') + 'queue=' + seg(queue);
  }
  function age(seconds) {
    if (typeof seconds !== 'number' || !isFinite(seconds)) return '—';
    if (seconds < 90) return seconds.toFixed(seconds < 10 ? 1 : 0) + ' s';
    if (seconds < 5400) return (seconds / 60).toFixed(0) + ' min';
    return (seconds / 3600).toFixed(1) + ' h';
  }
  function pct(part, whole) { return whole > 0 ? (100 * part / whole).toFixed(1) + ' %' : '—'; }
  function fileUrl(run, path) {
    return '/api/runs/' + seg(run) + '/files/' + String(path).split('/').map(seg).join('/');
  }
  function table(id, headers, rows, empty) {
    const head = el('tr', {}, headers.map((h) => {
      const [label, cls] = Array.isArray(h) ? h : [h, null];
      return el('th', {class: cls}, label);
    }));
    const body = el('tbody', {}, rows);
    if (!rows.length) body.appendChild(el('tr', {class: 'empty'},
      el('td', {colspan: headers.length, class: 'muted'}, empty || 'None.')));
    return el('table', {id: id}, el('thead', {}, head), body);
  }
  function stateCell(state) { return el('span', {class: 'state-' + text(state, 'unknown')}, text(state)); }

  // ---- API ----------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }
  async function api(path, options) {
    const r = await fetch(path, Object.assign({credentials: 'same-origin', cache: 'no-store'}, options || {}));
    const type = r.headers.get('Content-Type') || '';
    const body = type.includes('json') ? await r.json().catch(() => null) : await r.text();
    if (!r.ok) {
      const msg = body && typeof body === 'object' && body.error ? body.error : r.status + ' ' + r.statusText;
      throw new ApiError(r.status, msg);
    }
    return body;
  }
  // null instead of an error, for the parts a page can do without (an API older than the page).
  async function maybe(path) {
    try { return await api(path); } catch (e) { return null; }
  }

  // Actions: offered only when GET /api/csrf answers (actions enabled and a signed-in user).
  let csrf = null;
  async function loadCsrf() {
    // {"token", "header", "actions_enabled"}: buttons only when the exporter allows actions.
    const r = await maybe('/api/csrf');
    csrf = r && r.token && r.actions_enabled === true ? r.token : null;
    document.body.dataset.actions = csrf ? 'on' : 'off';
  }
  async function act(path, body, what) {
    try {
      const r = await api(path, {
        method: 'POST',
        headers: {'Content-Type': 'application/json', 'X-Scenefarm-CSRF': csrf},
        body: JSON.stringify(body || {}),
      });
      notice(what + ': done.', false);
      refreshNow();
      return r;
    } catch (e) {
      notice(what + ' refused: ' + e.message, true);
      return null;
    }
  }
  function actionButton(label, path, what, danger, confirmText) {
    if (!csrf) return null;
    return el('button', {
      type: 'button', class: 'action' + (danger ? ' danger' : ''), 'data-action': label.toLowerCase(),
      onclick: (ev) => {
        ev.preventDefault();
        if (confirmText && !window.confirm(confirmText)) return;
        act(path, {}, what);
      },
    }, label);
  }

  function notice(message, isError) {
    const n = document.getElementById('notice');
    n.hidden = !message;
    n.className = isError ? 'error' : '';
    replace(n, message || '');
  }

  // ---- live refresh -------------------------------------------------------------------------
  let paused = false, timer = null, refresher = null, running = false;
  function schedule() {
    clearTimeout(timer);
    if (!paused) timer = setTimeout(refreshNow, REFRESH_MS);
  }
  async function refreshNow() {
    if (!refresher || running) return;
    running = true;
    try {
      await refresher();
      const n = document.getElementById('notice');
      if (n.classList.contains('error') && n.dataset.kind === 'load') notice('');
      replace(document.getElementById('updated'), 'updated ' + new Date().toLocaleTimeString());
      document.body.dataset.loaded = String(Number(document.body.dataset.loaded || 0) + 1);
    } catch (e) {
      notice('Cannot load: ' + e.message, true);
      document.getElementById('notice').dataset.kind = 'load';
    } finally {
      running = false;
      schedule();
    }
  }
  function setupRefreshToggle() {
    const b = document.getElementById('refresh-toggle');
    b.addEventListener('click', () => {
      paused = !paused;
      b.textContent = paused ? 'Resume refresh' : 'Pause refresh';
      document.body.dataset.paused = paused ? '1' : '0';
      if (paused) clearTimeout(timer); else refreshNow();
    });
    document.addEventListener('visibilitychange', () => {
      if (document.hidden) clearTimeout(timer); else if (!paused) refreshNow();
    });
  }

  // ---- thumbnails: one <img> per file, kept across refreshes (no flicker, no refetch) --------
  const imgs = new Map();
  function thumb(run, f) {
    const url = fileUrl(run, f.path);
    let fig = imgs.get(url);
    if (!fig) {
      const img = el('img', {src: url, alt: f.name, loading: 'lazy', decoding: 'async', title: f.path});
      fig = el('figure', {}, el('a', {href: url}, img), el('figcaption', {}, f.name));
      imgs.set(url, fig);
    }
    return fig;
  }
  function mediaFor(run, files) {
    const out = [];
    const images = files.filter((f) => f.kind === 'image');
    out.push(el('div', {class: 'thumbs', id: 'thumbs'}, images.map((f) => thumb(run, f))));
    if (!images.length) out.push(el('p', {class: 'muted'}, 'No frames in the artifacts directory yet.'));
    for (const f of files.filter((x) => x.kind === 'video' || x.kind === 'audio')) {
      const url = fileUrl(run, f.path);
      if (!imgs.has(url)) imgs.set(url, el(f.kind, {src: url, controls: true, preload: 'metadata', title: f.path}));
      out.push(imgs.get(url));  // kept across refreshes: a playing video goes on playing
    }
    return out;
  }

  // ---- pages --------------------------------------------------------------------------------
  function queueRow(q) {
    const d = q.depth || {};
    const lh = q.last_hour || {};
    const ok = num(lh.succeeded), failed = num(lh.failed), dead = num(lh.dead_lettered);
    const name = text(q.queue);
    const qlink = (state, n) => el('a', {href: '/ui/queues/' + seg(name) + '?state=' + state}, String(num(n)));
    return el('tr', {'data-queue': name},
      el('td', {}, el('a', {href: '/ui/queues/' + seg(name)}, name), ' ',
        q.paused ? el('span', {class: 'badge paused'}, 'paused') : null),
      el('td', {class: 'num'}, qlink('pending', d.pending)),
      el('td', {class: 'num'}, qlink('delayed', d.delayed)),
      el('td', {class: 'num'}, qlink('leased', d.leased)),
      el('td', {class: 'num'}, el('a', {href: '/ui/dead' + (name === 'scenes' ? '' : '?queue=' + seg(name))},
        String(num(d.dead)))),
      el('td', {class: 'num'}, q.last_hour ? String(ok) : '—'),
      el('td', {class: 'num'}, q.last_hour ? pct(failed + dead, ok + failed + dead) : '—'),
      el('td', {class: 'num'}, age(q.oldest_pending_age_seconds)),
      el('td', {class: 'actions'}, q.paused
        ? actionButton('Resume', '/api/queues/' + seg(name) + '/resume', 'Resume ' + name)
        : actionButton('Pause', '/api/queues/' + seg(name) + '/pause', 'Pause ' + name)));
  }
  // A worker's "gpu": {instance, gpus: [{name, free_bytes, total_bytes, utilization_ratio}], error}.
  function gpuText(g) {
    if (!g || typeof g !== 'object') return '—';
    const list = Array.isArray(g) ? g : (Array.isArray(g.gpus) ? g.gpus : [g]);
    if (!list.length) return g.error ? 'unread: ' + String(g.error) : '—';
    return list.map((x) => {
      const parts = [text(x.name || x.gpu, 'GPU')];
      const total = x.total_bytes, used = typeof x.free_bytes === 'number' ? total - x.free_bytes : x.used_bytes;
      if (typeof used === 'number' && typeof total === 'number' && total > 0)
        parts.push((used / 2 ** 30).toFixed(1) + '/' + (total / 2 ** 30).toFixed(1) + ' GiB');
      if (typeof x.utilization_ratio === 'number') parts.push((100 * x.utilization_ratio).toFixed(0) + ' %');
      return parts.join(' ');
    }).join('; ');
  }
  function workerRow(w) {
    const scenes = Array.isArray(w.scenes) ? w.scenes : (w.scene ? [w.scene] : []);
    return el('tr', {'data-worker': text(w.id)},
      el('td', {}, text(w.id)),
      el('td', {}, text(Array.isArray(w.queues) ? w.queues.join(', ') : w.queues)),
      el('td', {}, text(w.state), (Array.isArray(w.paused) ? w.paused.length : w.paused)
        ? [' ', el('span', {class: 'badge paused', title: 'paused queues'}, 'paused: ' + text([].concat(w.paused).join(', ')))] : null),
      el('td', {}, scenes.length ? scenes.map((s, i) => [i ? ', ' : '',
        el('a', {href: withQueue('/ui/scenes/' + seg(s))}, String(s))]) : '—'),
      el('td', {}, gpuText(w.gpu)),
      el('td', {class: 'num'}, age(w.heartbeat_age_seconds)));
  }
  function comfyRow(c) {
    return el('tr', {'data-comfyui': text(c.url)},
      el('td', {}, text(c.url)),
      el('td', {}, c.up ? el('span', {class: 'up'}, 'up') : el('span', {class: 'down'}, 'down')),
      el('td', {class: 'num'}, text(c.queue_running)),
      el('td', {class: 'num'}, text(c.queue_pending)));
  }
  function runRow(r) {
    return el('tr', {'data-run': text(r.run)},
      el('td', {}, el('a', {href: withQueue('/ui/runs/' + seg(r.run))}, text(r.run))),
      el('td', {}, progressBar(r)),
      el('td', {class: 'num'}, String(num(r.succeeded)) + ' / ' + String(num(r.total))),
      el('td', {class: 'num'}, String(num(r.dead))),
      el('td', {}, r.finished ? 'finished' : 'in progress'));
  }
  function progressBar(r) {
    const total = Math.max(num(r.total), 1);
    const bar = el('div', {class: 'progress', title: num(r.succeeded) + ' of ' + num(r.total) + ' succeeded'});
    for (const k of ['succeeded', 'dead', 'cancelled']) {
      const s = el('span', {class: 'p-' + k});
      s.style.width = (100 * num(r[k]) / total) + '%';
      bar.appendChild(s);
    }
    return bar;
  }

  async function overview(main) {
    const [queues, workers, comfy, runs] = await Promise.all([
      api('/api/queues'), maybe('/api/workers'), maybe('/api/comfyui'), maybe(withQueue('/api/runs'))]);
    const qs = (queues && queues.queues) || [];
    replace(main,
      el('h1', {}, 'Farm overview'),
      el('h2', {}, 'Queues'),
      table('queues', ['Queue', ['Pending', 'num'], ['Delayed', 'num'], ['Leased', 'num'], ['Dead', 'num'],
        ['Succeeded (1 h)', 'num'], ['Failure rate (1 h)', 'num'], ['Oldest pending', 'num'], ''],
        qs.map(queueRow), 'No queues.'),
      el('h2', {}, 'Workers'),
      workers ? table('workers', ['Worker', 'Queues', 'State', 'Scene', 'GPU', ['Heartbeat age', 'num']],
        (workers.workers || []).map(workerRow), 'No live workers.')
        : el('p', {class: 'muted'}, 'Workers are not available from this exporter.'),
      el('h2', {}, 'ComfyUI instances'),
      comfy ? table('comfyui', ['URL', 'Status', ['Running', 'num'], ['Pending', 'num']],
        (comfy.instances || []).map(comfyRow), 'No ComfyUI configured.')
        : el('p', {class: 'muted'}, 'ComfyUI instances are not available from this exporter.'),
      el('h2', {}, 'Runs'),
      runs ? table('runs', ['Run', 'Progress', ['Succeeded', 'num'], ['Dead', 'num'], ''],
        (runs.runs || []).slice(0, 20).map(runRow), 'No runs.') : null);
  }

  async function runsPage(main) {
    const runs = await api(withQueue('/api/runs'));
    replace(main, el('h1', {}, 'Runs'),
      table('runs', ['Run', 'Progress', ['Succeeded', 'num'], ['Dead', 'num'], ''],
        (runs.runs || []).map(runRow), 'No runs.'));
  }

  const STATES = ['pending', 'delayed', 'leased', 'dead', 'done'];
  function scenesPage(main, q) {
    const state = STATES.includes(params.get('state')) ? params.get('state') : 'pending';
    const search = params.get('q') || '';
    const run = params.get('run') || '';
    const offset = Math.max(0, parseInt(params.get('offset') || '0', 10) || 0);
    const link = (extra) => {
      const p = new URLSearchParams({state: state});
      if (search) p.set('q', search);
      if (run) p.set('run', run);
      for (const [k, v] of Object.entries(extra)) p.set(k, v);
      return '/ui/queues/' + seg(q) + '?' + p.toString();
    };
    const input = el('input', {type: 'search', name: 'q', value: search, placeholder: 'scene id or run', id: 'search'});
    const results = el('div', {id: 'results'});
    replace(main,
      el('h1', {}, 'Queue ', q),
      el('div', {class: 'tabs'}, STATES.map((s) =>
        el('a', {href: link({state: s, offset: 0}), class: s === state ? 'current' : null}, s))),
      el('form', {class: 'search', method: 'get', action: '/ui/queues/' + seg(q)},
        el('input', {type: 'hidden', name: 'state', value: state}), input,
        el('button', {type: 'submit'}, 'Search')),
      results);
    return async () => {
      const p = new URLSearchParams({state: state, limit: PAGE_SIZE, offset: offset});
      if (search) p.set('q', search);
      if (run) p.set('run', run);
      const r = await api('/api/queues/' + seg(q) + '/scenes?' + p.toString());
      const scenes = r.scenes || [];
      const total = num(r.total);
      replace(results,
        table('scenes', ['Scene', 'Run', 'State', ['Attempts', 'num'], 'Reason', 'Worker', ''],
          scenes.map((s) => el('tr', {'data-scene': text(s.id)},
            el('td', {}, el('a', {href: '/ui/scenes/' + seg(s.id) + (q === 'scenes' ? '' : '?queue=' + seg(q))}, text(s.id))),
            el('td', {}, s.run ? el('a', {href: '/ui/runs/' + seg(s.run) + (q === 'scenes' ? '' : '?queue=' + seg(q))}, String(s.run)) : '—'),
            el('td', {}, stateCell(s.state)),
            el('td', {class: 'num'}, text(s.attempts, '0')),
            el('td', {}, text(s.reason)),
            el('td', {}, text(s.worker)),
            el('td', {class: 'actions'}, sceneActions(q, s)))), 'No ' + state + ' scenes.'),
        el('div', {class: 'pager'},
          offset > 0 ? el('a', {href: link({offset: Math.max(0, offset - PAGE_SIZE)})}, '← previous') : null,
          el('span', {class: 'muted'}, total ? (offset + 1) + '–' + (offset + scenes.length) + ' of ' + total : ''),
          offset + scenes.length < total ? el('a', {href: link({offset: offset + PAGE_SIZE})}, 'next →') : null));
    };
  }
  function sceneActions(q, s) {
    const base = '/api/scenes/' + seg(s.id);
    const qq = q === 'scenes' ? '' : '?queue=' + seg(q);
    const out = [];
    if (s.state === 'dead')  // the API retries dead scenes only (409 otherwise)
      out.push(actionButton('Retry', base + '/retry' + qq, 'Retry ' + s.id));
    if (s.state === 'pending' || s.state === 'delayed' || s.state === 'leased')
      out.push(actionButton('Cancel', base + '/cancel' + qq, 'Cancel ' + s.id, true, 'Cancel scene ' + s.id + '?'));
    return out;
  }

  function deadPage(main) {
    const results = el('div', {id: 'results'});
    replace(main, el('h1', {}, 'Dead letters of ', queue),
      el('p', {}, actionButton('Purge all dead letters', '/api/queues/' + seg(queue) + '/purge',
        'Purge the dead letters of ' + queue, true, 'Delete every dead letter of ' + queue + '?')),
      results);
    return async () => {
      const r = await api('/api/queues/' + seg(queue) + '/scenes?state=dead&limit=500');
      replace(results, table('dead', ['Scene', 'Run', ['Attempts', 'num'], 'Reason', ''],
        (r.scenes || []).map((s) => el('tr', {'data-scene': text(s.id)},
          el('td', {}, el('a', {href: withQueue('/ui/scenes/' + seg(s.id))}, text(s.id))),
          el('td', {}, s.run ? el('a', {href: withQueue('/ui/runs/' + seg(s.run))}, String(s.run)) : '—'),
          el('td', {class: 'num'}, text(s.attempts, '0')),
          el('td', {}, text(s.reason)),
          el('td', {class: 'actions'}, actionButton('Retry', '/api/scenes/' + seg(s.id) + '/retry' +
            (queue === 'scenes' ? '' : '?queue=' + seg(queue)), 'Retry ' + s.id)))),
        'No dead letters.'),
        num(r.total) > (r.scenes || []).length ? el('p', {class: 'muted'}, 'Showing ' + (r.scenes || []).length + ' of ' + r.total + '.') : null);
    };
  }

  function runPage(main, run) {
    const head = el('div', {id: 'run-head'});
    const media = el('div', {id: 'run-media'});
    const verdict = el('div', {id: 'validation'});
    const summary = el('pre', {id: 'run-summary'}, '');
    const scenes = el('div', {id: 'run-scenes'});
    replace(main, el('h1', {}, 'Run ', run), head,
      el('h2', {}, 'Frames'), media,
      el('h2', {}, 'Scenes'), scenes,
      el('h2', {}, 'Validation'), verdict,
      el('h2', {}, 'Run summary'), summary);
    return async () => {
      const [r, files, v] = await Promise.all([
        maybe(withQueue('/api/runs/' + seg(run))), api('/api/runs/' + seg(run) + '/files'),
        maybe('/api/runs/' + seg(run) + '/validation')]);
      let list = files.files || [];
      const hasMeta = list.some((f) => f.path === 'artifact-metadata.json');
      if (!list.some((f) => f.kind === 'image') && r && Array.isArray(r.scenes)) {
        // No frames in the artifacts directory here (another host's disk): the scenes' results
        // name them, and the exporter fetches those through ComfyUI's /view. Bounded: the first
        // MAX_VIEW_SCENES succeeded scenes.
        const done = r.scenes.filter((s) => s.state === 'succeeded').slice(0, MAX_VIEW_SCENES);
        const docs = await Promise.all(done.map((s) => maybe(withQueue('/api/scenes/' + seg(s.id)))));
        for (const d of docs) {
          const outputs = d && d.result && Array.isArray(d.result.outputs) ? d.result.outputs : [];
          list = list.concat(outputs.map((o) => ({path: d.id + '/' + o.filename, name: String(o.filename),
            kind: o.kind || 'image', scene: d.id})));
        }
      }
      replace(head,
        r ? el('div', {}, progressBar(r), el('p', {}, num(r.succeeded) + ' of ' + num(r.total) + ' succeeded, ' +
          num(r.dead) + ' dead, ' + num(r.cancelled) + ' cancelled, ' + num(r.pending) + ' pending, ' +
          num(r.leased) + ' rendering, ' + num(r.delayed) + ' delayed — ' + (r.finished ? 'finished' : 'in progress')))
          : el('p', {class: 'muted'}, 'This run is not in the queue (only its files are shown).'),
        hasMeta ? el('p', {}, el('a', {href: fileUrl(run, 'artifact-metadata.json'), download: 'artifact-metadata.json',
          id: 'metadata-link'}, 'Download artifact-metadata.json')) : null);
      replace(media, !files.exists && !list.length ? el('p', {class: 'muted'}, 'No directory for this run in the artifacts directory.')
        : mediaFor(run, list));
      const byScene = new Map();
      for (const f of list) if (f.kind === 'image' && f.scene) byScene.set(f.scene, (byScene.get(f.scene) || 0) + 1);
      const sceneList = r && Array.isArray(r.scenes) ? r.scenes
        : [...new Set(list.filter((f) => f.scene).map((f) => f.scene))].map((id) => ({id: id}));
      replace(scenes, table('scenes', ['Scene', 'State', ['Attempts', 'num'], ['Frames', 'num'], 'Reason'],
        sceneList.map((s) => el('tr', {'data-scene': text(s.id)},
          el('td', {}, el('a', {href: withQueue('/ui/scenes/' + seg(s.id))}, text(s.id))),
          el('td', {}, stateCell(s.state)),
          el('td', {class: 'num'}, text(s.attempts, '0')),
          el('td', {class: 'num'}, String(byScene.get(s.id) || 0)),
          el('td', {}, text(s.reason)))), 'No scenes.'));
      if (!v) replace(verdict, el('span', {class: 'muted'}, 'unknown'));
      else if (!v.assembled) replace(verdict, el('span', {class: 'muted', 'data-verdict': 'pending'},
        'Not assembled yet (no artifact-metadata.json).'));
      else replace(verdict, v.ok ? el('span', {class: 'ok', 'data-verdict': 'ok'}, 'Valid: the telemetry contract holds.')
        : [el('span', {class: 'bad', 'data-verdict': 'violations'}, (v.violations || []).length + ' violation(s):'),
          el('ul', {}, (v.violations || []).map((x) => el('li', {}, String(x))))]);
      if (list.some((f) => f.path === 'run-summary.txt')) {
        const t = await maybe(fileUrl(run, 'run-summary.txt'));
        replace(summary, typeof t === 'string' ? t : '');
      } else {
        replace(summary, 'No run-summary.txt yet.');
      }
    };
  }

  // A history event's time: its stream id is "MS-SEQ" (the Redis server's clock).
  function eventTime(h) {
    const ms = parseInt(String(h.event_id || '').split('-')[0], 10);
    if (isFinite(ms) && ms > 0) return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
    return text(h.at || h.time);
  }

  const TELEMETRY_SKIP = new Set(['FallbackNotes']);
  function telemetryFields(t) {
    const out = [];
    const walk = (prefix, o) => {
      for (const [k, v] of Object.entries(o)) {
        if (TELEMETRY_SKIP.has(k)) continue;
        if (v && typeof v === 'object' && !Array.isArray(v)) walk(prefix + k + '.', v);
        else out.push([prefix + k, Array.isArray(v) ? v.join(', ') : v]);
      }
    };
    walk('', t);
    return out;
  }
  function fallbackNotes(t) {
    const notes = [];
    const walk = (o) => {
      if (!o || typeof o !== 'object') return;
      for (const [k, v] of Object.entries(o)) {
        if (k === 'FallbackNotes' && Array.isArray(v)) notes.push(...v);
        else if (v && typeof v === 'object') walk(v);
      }
    };
    walk(t);
    return notes;
  }

  function scenePage(main, id) {
    const head = el('div', {id: 'scene-head'});
    const acts = el('p', {class: 'actions', id: 'scene-actions'});
    const tele = el('div', {id: 'telemetry'});
    const media = el('div', {id: 'scene-media'});
    const hist = el('div', {id: 'history'});
    const wf = el('pre', {id: 'workflow'}, '');
    replace(main, el('h1', {}, 'Scene ', id), head, acts,
      el('h2', {}, 'Frames'), media,
      el('h2', {}, 'Telemetry'), tele,
      el('h2', {}, 'History'), hist,
      el('h2', {}, 'Workflow'), wf);
    return async () => {
      const s = await api(withQueue('/api/scenes/' + seg(id)));
      const run = s.run;
      replace(head, el('dl', {class: 'fields'},
        el('dt', {}, 'State'), el('dd', {id: 'scene-state'}, stateCell(s.state)),
        el('dt', {}, 'Run'), el('dd', {}, run ? el('a', {href: withQueue('/ui/runs/' + seg(run))}, String(run)) : '—'),
        el('dt', {}, 'Attempts'), el('dd', {id: 'scene-attempts'}, text(s.attempts, '0')),
        el('dt', {}, 'Failures'), el('dd', {}, text(s.failures, '0')),
        el('dt', {}, 'Worker'), el('dd', {}, text(s.worker)),
        el('dt', {}, 'Reason'), el('dd', {id: 'scene-reason'}, text(s.reason))));
      replace(acts, sceneActions(queue, s));
      const files = run ? await maybe('/api/runs/' + seg(run) + '/files?scene=' + seg(id)) : null;
      let list = files && files.files ? files.files : [];
      const outputs = s.result && Array.isArray(s.result.outputs) ? s.result.outputs : [];
      if (!list.some((f) => f.kind === 'image') && outputs.length) {
        // Not in the artifacts directory here: the exporter fetches them from ComfyUI's /view.
        list = list.concat(outputs.map((o) => ({path: id + '/' + o.filename, name: String(o.filename),
          kind: o.kind || 'image', scene: id})));
      }
      replace(media, mediaFor(run, list));
      let t = s.result && s.result.telemetry;
      if (!t && list.some((f) => f.name === 'telemetry.json')) {
        const doc = await maybe(fileUrl(run, id + '/telemetry.json'));
        t = doc && doc.Telemetry ? doc.Telemetry : null;
      }
      if (!t) {
        replace(tele, el('p', {class: 'muted'}, 'No telemetry recorded for this scene yet.'));
      } else {
        const notes = fallbackNotes(t);
        replace(tele,
          notes.length ? el('div', {id: 'fallback-notes'}, notes.map((n) => el('div', {class: 'fallback'}, 'Fallback: ', String(n))))
            : el('p', {class: 'ok'}, 'No fallback notes.'),
          el('dl', {class: 'fields'}, telemetryFields(t).map(([k, v]) => [el('dt', {}, k), el('dd', {}, text(v))])));
      }
      const history = Array.isArray(s.history) ? s.history : [];
      replace(hist, table('history-table', ['Time', 'Event', 'By', 'Worker', 'Attempt', 'Reason'],
        history.map((h) => el('tr', {},
          el('td', {}, eventTime(h)),
          el('td', {}, text(h.event || h.type)),
          el('td', {class: 'by'}, text(h.by)),
          el('td', {}, text(h.worker)),
          el('td', {class: 'num'}, text(h.attempt)),
          el('td', {}, text(h.reason || h.error)))), 'No events.'));
      const doc = s.doc || s.scene || null;
      const workflow = doc && doc.workflow !== undefined ? doc.workflow : doc;
      replace(wf, workflow ? JSON.stringify(workflow, null, 2) : 'The API did not return the scene document.');
    };
  }

  // ---- routing ------------------------------------------------------------------------------
  function route() {
    const path = location.pathname.replace(/\/+$/, '');
    const parts = path.split('/').slice(2).map(decodeURIComponent);  // after "/ui"
    const main = document.getElementById('main');
    if (parts.length === 0) return () => overview(main);
    if (parts[0] === 'runs' && parts.length === 1) return () => runsPage(main);
    if (parts[0] === 'runs' && parts.length === 2) return runPage(main, parts[1]);
    if (parts[0] === 'scenes' && parts.length === 2) return scenePage(main, parts[1]);
    if (parts[0] === 'queues' && parts.length === 2) return scenesPage(main, parts[1]);
    if (parts[0] === 'queues' && parts.length === 1) return scenesPage(main, queue);
    if (parts[0] === 'dead') return deadPage(main);
    replace(main, el('h1', {}, 'Not found'), el('p', {}, el('a', {href: '/ui/'}, 'Overview')));
    return null;
  }

  async function start() {
    setupRefreshToggle();
    await loadCsrf();
    refresher = route();
    await refreshNow();
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
