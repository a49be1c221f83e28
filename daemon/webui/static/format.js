// Formatting of sizes, rates, times and states for display.

const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

export function bytes(n) {
  if (!(n >= 0)) return '—';
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? String(n) : n.toFixed(n < 10 ? 2 : n < 100 ? 1 : 0)) + ' ' + units[i];
}

export function rate(n) {
  return n > 0 ? bytes(n) + '/s' : '—';
}

// eta formats Transmission's eta: seconds, or -1 (not available) and -2
// (unknown).
export function eta(s) {
  if (s === -2) return '∞';
  if (!(s >= 0)) return '—';
  if (s < 60) return s + 's';
  if (s < 3600) return Math.floor(s / 60) + 'm ' + (s % 60) + 's';
  if (s < 86400) return Math.floor(s / 3600) + 'h ' + Math.floor((s % 3600) / 60) + 'm';
  return Math.floor(s / 86400) + 'd ' + Math.floor((s % 86400) / 3600) + 'h';
}

export function percent(f) {
  if (!(f >= 0)) return '—';
  // Floor, not round: "100%" must mean every piece.
  const p = Math.floor(f * 1000) / 10;
  return (Number.isInteger(p) ? p.toFixed(0) : p.toFixed(1)) + '%';
}

// Transmission's status codes, 0..6.
const states = ['Paused', 'Waiting to check', 'Checking', 'Queued', 'Downloading', 'Queued to seed', 'Seeding'];

// state says what a torrent is doing, from the fields the list asks for.
export function state(t) {
  if (t.status === 0) return t.percentDone >= 1 ? 'Finished' : 'Paused';
  if (t.status === 4 && t.metadataPercentComplete < 1) return 'Fetching metadata';
  return states[t.status] ?? `Status ${t.status}`;
}

export function date(unixSeconds) {
  if (!(unixSeconds > 0)) return '—';
  return new Date(unixSeconds * 1000).toLocaleString();
}
