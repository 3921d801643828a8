// What this browser remembers between visits (columns, saved views, the last visit), as
// JSON in localStorage. Storage can be full or switched off (private windows, policies):
// the page then works without remembering rather than failing.

const PREFIX = 'partner-center-sync.';

export function load(key, fallback) {
  try {
    const raw = localStorage.getItem(PREFIX + key);
    return raw === null ? fallback : JSON.parse(raw);
  } catch (_) {
    return fallback;
  }
}

export function save(key, value) {
  try {
    localStorage.setItem(PREFIX + key, JSON.stringify(value));
  } catch (_) {
    // Not remembered this time; the page itself is unaffected.
  }
}
