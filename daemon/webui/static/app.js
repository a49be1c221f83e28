// shoal's web UI: the torrent list, the add and remove dialogs and a
// torrent's details, all through the Transmission RPC (rpc.js).
//
// Everything the server sends is shown with textContent or as a property
// and never parsed as markup: torrent, file, tracker and client names come
// from strangers, and the Content-Security-Policy is the second line, not
// the first.

import { RPC } from './rpc.js';
import * as fmt from './format.js';

const rpc = new RPC();

// POLL_MS is how often the list is refreshed while the page is visible.
const POLL_MS = 1500;
const HIDDEN_POLL_MS = 10000;
// FULL_EVERY polls, the whole list is fetched again rather than only the
// recently active torrents: the cheap poll cannot notice a torrent that
// another client changed without it becoming active, such as a rename.
const FULL_EVERY = 20;

// LIST_FIELDS are the fields the list shows, and no more: with a thousand
// torrents the size of each poll is what the daemon pays for.
const LIST_FIELDS = ['id', 'name', 'status', 'percentDone', 'rateDownload', 'rateUpload',
  'peersConnected', 'eta', 'sizeWhenDone', 'error', 'errorString',
  'metadataPercentComplete'];
const DETAIL_FIELDS = [...LIST_FIELDS, 'hashString', 'downloadDir', 'addedDate',
  'downloadedEver', 'uploadedEver', 'uploadRatio', 'files', 'fileStats'];

const $ = (id) => document.getElementById(id);

// el makes an element with the given properties and children. Strings
// among the children become text nodes, so they are never parsed as HTML.
function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('data-') || k.startsWith('aria-')) e.setAttribute(k, String(v));
    else e[k] = v;
  }
  e.append(...children);
  return e;
}

// ---- the list ----

const torrents = new Map(); // id → the latest fields from torrent-get
const rows = new Map(); // id → {li, and the parts that change}
let polls = 0;
let needFull = true;
let loaded = false;

async function refreshList() {
  const full = needFull || polls % FULL_EVERY === 0;
  const args = { fields: LIST_FIELDS };
  // After a full fetch, only what changed: Transmission's "recently-active"
  // gives the torrents active in the last minute and the ids removed.
  if (!full) args.ids = 'recently-active';
  const [got, stats] = await Promise.all([
    rpc.call('torrent-get', args),
    rpc.call('session-stats'),
  ]);
  const list = Array.isArray(got.torrents) ? got.torrents : [];
  if (full) {
    const seen = new Set(list.map((t) => t.id));
    for (const id of torrents.keys()) if (!seen.has(id)) torrents.delete(id);
  }
  for (const id of got.removed || []) torrents.delete(id);
  for (const t of list) torrents.set(t.id, Object.assign(torrents.get(t.id) || {}, t));
  needFull = false;
  loaded = true;
  // Only the rows of what the poll returned can have changed.
  renderList(list);
  renderTotals(stats);
}

// setText changes a node's text only when it differs: most fields of most
// rows are the same from one poll to the next, and a write, even of the
// same text, makes the browser lay the row out again.
function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function renderTotals(s) {
  const cur = s['current-stats'] || {};
  setText($('totals'),
    `↓ ${fmt.rate(s.downloadSpeed)}  ↑ ${fmt.rate(s.uploadSpeed)} · ` +
    `${s.torrentCount ?? torrents.size} torrents, ${s.activeTorrentCount ?? 0} active · ` +
    `this session ↓ ${fmt.bytes(cur.downloadedBytes ?? 0)} ↑ ${fmt.bytes(cur.uploadedBytes ?? 0)}`);
}

function makeRow(id) {
  const r = {};
  r.name = el('button', { type: 'button', class: 'name', 'data-action': 'details' });
  r.err = el('span', { class: 'err' });
  r.bar = el('progress', { max: 1, value: 0 });
  r.pct = el('span', { class: 'pct' });
  r.state = el('span', { class: 'c-state' });
  r.down = el('span', { class: 'c-down' });
  r.up = el('span', { class: 'c-up' });
  r.peers = el('span', { class: 'c-peers' });
  r.eta = el('span', { class: 'c-eta' });
  r.size = el('span', { class: 'c-size' });
  r.toggle = el('button', { type: 'button', 'data-action': 'toggle' });
  r.li = el('li', { class: 'torrent', 'data-id': id },
    el('div', { class: 'c-name' }, r.name, r.err),
    el('div', { class: 'c-progress' }, r.bar, r.pct),
    r.state, r.down, r.up, r.peers, r.eta, r.size,
    el('div', { class: 'c-actions' }, r.toggle,
      el('button', { type: 'button', 'data-action': 'remove' }, 'Remove')));
  return r;
}

// renderList updates the rows of the torrents in changed, drops the rows
// of torrents gone, and puts the rows in order by name when a torrent
// came, went or was renamed (a magnet's name, once its metadata arrives).
function renderList(changed) {
  let reorder = false;
  for (const [id, r] of rows) {
    if (!torrents.has(id)) { r.li.remove(); rows.delete(id); }
  }
  for (const c of changed) {
    const t = torrents.get(c.id);
    let r = rows.get(c.id);
    if (!r) { r = makeRow(c.id); rows.set(c.id, r); reorder = true; }
    if (r.name.textContent !== t.name) reorder = true;
    updateRow(r, t);
  }
  if (reorder) {
    const sorted = [...torrents.values()].sort((a, b) =>
      String(a.name).localeCompare(String(b.name), undefined, { sensitivity: 'base' }) || a.id - b.id);
    const ul = $('torrents');
    let prev = null;
    for (const t of sorted) {
      const li = rows.get(t.id).li;
      // Moved only when out of place, so a row under the pointer stays put.
      const want = prev ? prev.nextSibling : ul.firstChild;
      if (want !== li) ul.insertBefore(li, want);
      prev = li;
    }
  }
  $('empty').hidden = !loaded || torrents.size > 0;
}

function updateRow(r, t) {
  setText(r.name, t.name);
  r.name.title = t.name;
  // Transmission's error: 1 a tracker's warning, 2 a tracker's error
  // (both leave the torrent running), 3 a local error, which stops it.
  setText(r.err, t.error ? t.errorString || `error ${t.error}` : '');
  r.err.hidden = !t.error;
  r.li.classList.toggle('has-warning', t.error === 1);
  r.li.classList.toggle('has-error', t.error >= 2);
  r.li.classList.toggle('paused', t.status === 0);
  r.li.classList.toggle('done', t.percentDone >= 1);
  r.bar.value = t.percentDone || 0;
  setText(r.pct, fmt.percent(t.percentDone));
  setText(r.state, t.error === 3 ? 'Error' : fmt.state(t));
  setText(r.down, '↓ ' + fmt.rate(t.rateDownload));
  setText(r.up, '↑ ' + fmt.rate(t.rateUpload));
  setText(r.peers, `${t.peersConnected ?? 0} peers`);
  setText(r.eta, t.status === 4 ? 'ETA ' + fmt.eta(t.eta) : '');
  // A magnet's size is unknown (0) until its metadata arrives.
  setText(r.size, t.metadataPercentComplete < 1 ? '—' : fmt.bytes(t.sizeWhenDone));
  setText(r.toggle, t.status === 0 ? 'Resume' : 'Pause');
}

$('torrents').addEventListener('click', async (ev) => {
  const b = ev.target.closest('button[data-action]');
  if (!b) return;
  const id = Number(b.closest('li.torrent').dataset.id);
  const t = torrents.get(id);
  if (!t) return;
  switch (b.dataset.action) {
    case 'details': openDetails(id); break;
    case 'remove': openRemove(id); break;
    case 'toggle':
      await act(() => rpc.call(t.status === 0 ? 'torrent-start' : 'torrent-stop', { ids: [id] }));
      break;
  }
});

// act runs an RPC the user asked for, shows its error if it fails, and
// refreshes right away so the user sees the result without waiting a poll.
async function act(f) {
  try {
    await f();
  } catch (e) {
    showActionError(e.message);
  }
  refreshSoon();
}

// ---- polling ----

let timer = 0;
let running = false;
let again = false;

function schedule(ms) {
  clearTimeout(timer);
  timer = setTimeout(tick, ms);
}

function refreshSoon() {
  schedule(0);
}

async function tick() {
  if (running) { again = true; return; }
  running = true;
  try {
    await refreshList();
    if (detailId !== null) await refreshDetails();
    showError('');
  } catch (e) {
    needFull = true;
    showError(e.message);
  }
  polls++;
  running = false;
  if (again) { again = false; schedule(0); return; }
  schedule(document.hidden ? HIDDEN_POLL_MS : POLL_MS);
}

document.addEventListener('visibilitychange', () => { if (!document.hidden) refreshSoon(); });

// The banner says what is wrong with the connection, which each poll
// sets or clears, and what went wrong with the user's last action, which
// stays a while: the poll that follows the action must not wipe it.
let connMsg = '';
let actMsg = '';
let actTimer = 0;

function showError(msg) {
  connMsg = msg;
  renderBanner();
}

function showActionError(msg) {
  actMsg = msg;
  clearTimeout(actTimer);
  actTimer = setTimeout(() => { actMsg = ''; renderBanner(); }, 10000);
  renderBanner();
}

function renderBanner() {
  const text = [actMsg, connMsg].filter(Boolean).join(' · ');
  setText($('conn-error'), text);
  $('conn-error').hidden = !text;
}

// ---- adding ----

// toLink turns a bare info-hash into a magnet, which every Transmission
// RPC takes: 40 hex or 32 base32 characters are a v1 hash, 64 hex a v2
// one (as a multihash, 0x12 0x20 for SHA-256).
function toLink(s) {
  if (/^[0-9a-f]{40}$/i.test(s) || /^[a-z2-7]{32}$/i.test(s)) return 'magnet:?xt=urn:btih:' + s;
  if (/^[0-9a-f]{64}$/i.test(s)) return 'magnet:?xt=urn:btmh:1220' + s;
  return s;
}

function base64(buf) {
  const b = new Uint8Array(buf);
  let s = '';
  // In slices: spreading a whole large file into one call overflows the stack.
  for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode(...b.subarray(i, i + 0x8000));
  return btoa(s);
}

$('add-open').addEventListener('click', () => {
  $('add-form').reset();
  $('add-error').hidden = true;
  $('add-dialog').showModal();
});
$('add-cancel').addEventListener('click', () => $('add-dialog').close());

$('add-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const paused = $('add-paused').checked;
  const jobs = [];
  for (const line of $('add-links').value.split('\n')) {
    const s = line.trim();
    if (s) jobs.push({ label: s, args: async () => ({ filename: toLink(s), paused }) });
  }
  for (const f of $('add-files').files) {
    jobs.push({ label: f.name, args: async () => ({ metainfo: base64(await f.arrayBuffer()), paused }) });
  }
  if (jobs.length === 0) {
    showAddError(['Give a magnet link, an info-hash or a .torrent file.']);
    return;
  }
  $('add-submit').disabled = true;
  const errors = [];
  for (const j of jobs) {
    try {
      const r = await rpc.call('torrent-add', await j.args());
      if (r['torrent-duplicate']) errors.push(`${j.label}: already in the list`);
    } catch (e) {
      errors.push(`${j.label}: ${e.message}`);
    }
  }
  $('add-submit').disabled = false;
  needFull = true;
  refreshSoon();
  if (errors.length) showAddError(errors);
  else $('add-dialog').close();
});

function showAddError(lines) {
  const p = $('add-error');
  p.replaceChildren(...lines.flatMap((l, i) => (i ? [el('br'), l] : [l])));
  p.hidden = false;
}

// ---- removing ----

let removeId = null;

function openRemove(id) {
  removeId = id;
  $('remove-form').reset();
  $('remove-name').textContent = torrents.get(id)?.name ?? `#${id}`;
  $('remove-dialog').showModal();
}
$('remove-cancel').addEventListener('click', () => $('remove-dialog').close());
$('remove-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const id = removeId;
  const withData = $('remove-data').checked;
  $('remove-dialog').close();
  if (id === detailId) $('details').close();
  needFull = true;
  await act(() => rpc.call('torrent-remove', { ids: [id], 'delete-local-data': withData }));
});

// ---- details ----

let detailId = null;
let tab = 'files';
let fileRows = []; // by file index: {li, box, name, pct, size, prio, lock}
let detailSeq = 0; // counts detail fetches, to know which are older than a change

function openDetails(id) {
  detailId = id;
  fileRows = [];
  $('files').replaceChildren();
  $('peers').replaceChildren();
  $('trackers').replaceChildren();
  $('details-info').replaceChildren();
  $('details-name').textContent = torrents.get(id)?.name ?? '';
  $('details-error').hidden = true;
  if (!$('details').open) $('details').showModal();
  refreshSoon();
}
$('details-close').addEventListener('click', () => $('details').close());
$('details').addEventListener('close', () => { detailId = null; });

for (const b of document.querySelectorAll('.tabs [data-tab]')) {
  b.addEventListener('click', () => {
    tab = b.dataset.tab;
    for (const o of document.querySelectorAll('.tabs [data-tab]')) {
      o.setAttribute('aria-selected', String(o === b));
      $('tab-' + o.dataset.tab).hidden = o !== b;
    }
    refreshSoon();
  });
}

async function refreshDetails() {
  const id = detailId;
  const seq = ++detailSeq;
  // Peers and trackers only while their tab is shown.
  const fields = [...DETAIL_FIELDS];
  if (tab === 'peers') fields.push('peers');
  if (tab === 'trackers') fields.push('trackerStats');
  const got = await rpc.call('torrent-get', { ids: [id], fields });
  if (id !== detailId) return; // closed or switched while we asked
  const t = (got.torrents || [])[0];
  if (!t) { $('details').close(); return; }
  $('details-name').textContent = t.name;
  $('details-error').textContent = t.error ? t.errorString || `error ${t.error}` : '';
  $('details-error').hidden = !t.error;
  renderInfo(t);
  renderFiles(t, seq);
  if (tab === 'peers') renderPeers(t.peers || []);
  if (tab === 'trackers') renderTrackers(t.trackerStats || []);
}

function renderInfo(t) {
  const items = [
    ['State', t.error === 3 ? 'Error' : fmt.state(t)],
    ['Progress', `${fmt.percent(t.percentDone)} of ${fmt.bytes(t.sizeWhenDone)}`],
    ['Downloaded', fmt.bytes(t.downloadedEver)],
    ['Uploaded', `${fmt.bytes(t.uploadedEver)} (ratio ${t.uploadRatio >= 0 ? t.uploadRatio.toFixed(2) : '—'})`],
    ['Info-hash', t.hashString],
    ['Location', t.downloadDir],
    ['Added', fmt.date(t.addedDate)],
  ];
  $('details-info').replaceChildren(...items.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, String(v ?? '—'))]));
}

function renderFiles(t, seq) {
  const files = t.files || [];
  const stats = t.fileStats || [];
  if (fileRows.length !== files.length || files.length === 0) {
    // First time, or the metadata of a magnet has just arrived.
    fileRows = files.map((_, i) => makeFileRow(i));
    if (files.length === 0) {
      $('files').replaceChildren(el('li', { class: 'none' }, 'The file list comes with the metadata.'));
    } else {
      $('files').replaceChildren(...fileRows.map((r) => r.li));
    }
  }
  files.forEach((f, i) => {
    const r = fileRows[i];
    const st = stats[i] || {};
    setText(r.name, f.name);
    r.name.title = f.name;
    setText(r.pct, fmt.percent(f.length ? f.bytesCompleted / f.length : 1));
    setText(r.size, fmt.bytes(f.length));
    // A fetch that began before the user's change still has the old
    // values: leave the controls as the user set them.
    if (seq >= r.lock) {
      r.box.checked = !!st.wanted;
      r.prio.value = String(st.priority ?? 0);
    }
    r.li.classList.toggle('unwanted', !r.box.checked);
  });
}

function makeFileRow(i) {
  const r = { lock: 0 };
  r.box = el('input', { type: 'checkbox', 'aria-label': 'Download this file' });
  r.name = el('span', { class: 'f-name' });
  r.pct = el('span', { class: 'f-pct' });
  r.size = el('span', { class: 'f-size' });
  r.prio = el('select', { class: 'f-prio', 'aria-label': 'Priority' },
    el('option', { value: '-1' }, 'Low'), el('option', { value: '0' }, 'Normal'),
    el('option', { value: '1' }, 'High'));
  r.li = el('li', { class: 'file', 'data-index': i },
    el('label', { class: 'f-want' }, r.box, r.name), r.pct, r.size, r.prio);
  r.box.addEventListener('change', () => setFile(r, { [r.box.checked ? 'files-wanted' : 'files-unwanted']: [i] }));
  r.prio.addEventListener('change', () => {
    const key = { '-1': 'priority-low', 0: 'priority-normal', 1: 'priority-high' }[r.prio.value];
    setFile(r, { [key]: [i] });
  });
  return r;
}

async function setFile(r, change) {
  const id = detailId;
  r.lock = Infinity;
  r.li.classList.toggle('unwanted', !r.box.checked);
  try {
    await rpc.call('torrent-set', { ids: [id], ...change });
  } catch (e) {
    showActionError(e.message);
  }
  // Only fetches that start from now on show the server's values again.
  r.lock = detailSeq + 1;
  refreshSoon();
}

function renderPeers(peers) {
  const ul = $('peers');
  if (peers.length === 0) { ul.replaceChildren(el('li', { class: 'none' }, 'No peers connected.')); return; }
  ul.replaceChildren(...peers.map((p) => el('li', {},
    el('span', { class: 'r-main' }, `${p.address}:${p.port}`),
    el('span', {}, p.clientName || '?'),
    el('span', {}, fmt.percent(p.progress)),
    el('span', {}, '↓ ' + fmt.rate(p.rateToClient)),
    el('span', {}, '↑ ' + fmt.rate(p.rateToPeer)),
    el('span', { title: 'Transmission flags' }, p.flagStr || ''))));
}

function renderTrackers(trackers) {
  const ul = $('trackers');
  if (trackers.length === 0) { ul.replaceChildren(el('li', { class: 'none' }, 'No trackers.')); return; }
  ul.replaceChildren(...trackers.map((tr) => el('li', {},
    el('span', { class: 'r-main' }, tr.announce),
    el('span', {}, tr.hasAnnounced ? (tr.lastAnnounceSucceeded ? 'ok' : tr.lastAnnounceResult || 'failed') : 'not yet'),
    el('span', {}, `${tr.seederCount >= 0 ? tr.seederCount : '?'} seeders`),
    el('span', {}, `${tr.leecherCount >= 0 ? tr.leecherCount : '?'} leechers`),
    el('span', {}, 'last ' + fmt.date(tr.lastAnnounceTime)))));
}

refreshSoon();
