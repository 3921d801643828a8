// The header: sync status from /healthz and the Sync now button.
//
// Status is polled every 2 s while a run is queued or running, every 15 s otherwise, and
// not at all while the tab is hidden.

import { API, api, withToken } from './api.js';
import { $ } from './dom.js';
import { num, plural, relative, setTime } from './format.js';
import { view } from './state.js';
import { loadCurrentTab } from './tabs.js';
import { toast } from './toast.js';

const POLL_ACTIVE_MS = 2000;
const POLL_IDLE_MS = 15000;
const TERMINAL = new Set(['succeeded', 'failed', 'skipped', 'cancelled']);

const status = { health: null, timer: null, watched: new Set(), announced: new Set(), triggering: false };

function describe(h) {
  if (!h) return { state: 'unreachable', text: 'Daemon unreachable', detail: 'The status endpoint did not answer; retrying.', tone: 'bad' };
  const run = h.current_run;
  if (run && run.status === 'running') {
    const live = [plural(run.pages, 'page', 'pages'), `${num(run.fetched)} fetched`, `${num(run.inserted)} new`, `${num(run.updated)} updated`];
    return { state: 'running', text: `Syncing · ${live.join(' · ')}`, detail: `Run #${run.id} (${run.trigger}, ${run.mode}) started ${relative(run.started_at || run.queued_at)}.` };
  }
  if (run) return { state: 'queued', text: 'Sync queued', detail: `Run #${run.id} will start shortly.` };
  if (h.database && h.database.reachable === false) return { state: 'unreachable', text: 'Database unreachable', detail: 'The daemon cannot reach PostgreSQL; see its log.', tone: 'bad' };
  if (!h.partner_center_enabled) return { state: 'disabled', text: 'Sync disabled', detail: null };
  if (h.auth && h.auth.state === 'sign_in_required') {
    // The explanation shows as the Sync now hint, below.
    return { state: 'sign_in_required', text: 'Sign-in required', detail: null };
  }
  const last = h.last_run;
  if (!last) return { state: 'idle', text: 'Not synced yet', detail: null };
  if (last.status === 'succeeded') {
    return { state: 'succeeded', text: 'Up to date', detail: `Last run #${last.id}: ${num(last.fetched)} fetched, ${num(last.inserted)} new, ${num(last.updated)} updated.` };
  }
  if (last.status === 'failed') return { state: 'failed', text: 'Last sync failed', detail: last.error || `Run #${last.id} failed.`, tone: 'bad' };
  if (last.status === 'cancelled') return { state: 'cancelled', text: 'Last sync cancelled', detail: last.error || `Run #${last.id} was cancelled.`, tone: 'warn' };
  return { state: 'idle', text: `Last run ${last.status}`, detail: null };
}

function renderStatus(h) {
  const d = describe(h);
  const indicator = $('sync-status');
  indicator.dataset.state = d.state;
  indicator.querySelector('.status-text').textContent = d.text;
  const detail = $('status-detail');
  detail.textContent = d.detail || '';
  // Long errors are clamped to three lines; the whole text is on hover and in the Runs tab.
  detail.title = d.detail || '';
  detail.hidden = !d.detail;
  detail.className = `status-detail small${d.tone ? ` ${d.tone}` : ''}`;
  $('version').textContent = h && h.version ? `partner-center-sync ${h.version}` : '';
  setTime($('last-success'), h && h.last_success_at, 'never');
  setTime($('next-run'), h && h.partner_center_enabled ? h.next_run_at : null, h && !h.partner_center_enabled ? 'none (sync disabled)' : 'not scheduled');

  const button = $('sync-now');
  const hint = $('sync-hint');
  const active = d.state === 'running' || d.state === 'queued';
  let reason = '';
  if (h && !h.partner_center_enabled) reason = 'Sync is turned off (HUNTER_PARTNER_CENTER_ENABLED=false); enable it and reload the daemon.';
  else if (h && h.auth && h.auth.state === 'sign_in_required') reason = h.auth.message || 'Sign-in required: run `partner-center-sync login` on the server.';
  button.disabled = Boolean(reason) || active || status.triggering;
  button.classList.toggle('busy', active || status.triggering);
  button.querySelector('.label').textContent = active ? 'Syncing…' : 'Sync now';
  button.title = reason;
  hint.textContent = reason;
  hint.hidden = !reason;
  $('sync-progress').hidden = !active;
}

function runMessage(run) {
  return `Run #${run.id}: ${plural(run.inserted, 'referral', 'referrals')} inserted, ${num(run.updated)} updated, ${num(run.unchanged)} unchanged.`;
}

/** Announces each watched run once when it ends, then refreshes what it changed. */
async function announceFinished(h) {
  const current = h.current_run ? h.current_run.id : null;
  for (const id of [...status.watched]) {
    if (id === current) continue;
    let run = h.last_run && h.last_run.id === id ? h.last_run : null;
    if (!run) {
      try {
        run = (await api(`${API}/sync-runs/${id}`)).body;
      } catch (_) {
        status.watched.delete(id);
        continue;
      }
    }
    if (!TERMINAL.has(run.status)) continue;
    status.watched.delete(id);
    if (status.announced.has(id)) continue;
    status.announced.add(id);
    if (run.status === 'succeeded') toast('success', 'Sync finished', runMessage(run));
    else if (run.status === 'failed') toast('error', 'Sync failed', run.error || `Run #${run.id} failed.`);
    else toast('info', `Sync ${run.status}`, run.error || `Run #${run.id} ${run.status}.`);
    loadCurrentTab();
  }
}

export async function pollStatus() {
  clearTimeout(status.timer);
  let h = null;
  try {
    // With `api_token` set, /healthz shows the whole document only with the token.
    const response = await fetch('/healthz', { headers: withToken({ Accept: 'application/json' }), cache: 'no-store' });
    const body = await response.json();
    // Anything but the health document (a proxy's error page, a 401) means "unknown".
    h = body && typeof body === 'object' && 'partner_center_enabled' in body ? body : null;
  } catch (_) {
    h = null;
  }
  status.health = h;
  try {
    if (h && h.current_run) status.watched.add(h.current_run.id);
    renderStatus(h);
    if (h) {
      await announceFinished(h);
      if (h.current_run && view.tab === 'runs') loadCurrentTab();
    }
  } finally {
    schedulePoll();
  }
}

function schedulePoll() {
  clearTimeout(status.timer);
  if (document.hidden) return;
  const active = status.watched.size > 0 || (status.health && status.health.current_run);
  status.timer = setTimeout(pollStatus, active ? POLL_ACTIVE_MS : POLL_IDLE_MS);
}

async function syncNow() {
  status.triggering = true;
  renderStatus(status.health);
  try {
    const { body } = await api(`${API}/referrals/sync`, { method: 'POST' });
    status.watched.add(body.task_id);
    if (body.status === 'already_running') toast('info', 'A sync is already running', `Run #${body.task_id} is in progress; its result will show here.`);
    else toast('info', 'Sync queued', `Run #${body.task_id} will start shortly.`);
  } catch (error) {
    toast('error', 'Sync could not start', error.message);
  } finally {
    status.triggering = false;
  }
  pollStatus();
}

export function bindStatus() {
  $('sync-now').addEventListener('click', syncNow);
  document.addEventListener('visibilitychange', () => {
    if (document.hidden) clearTimeout(status.timer);
    else pollStatus();
  });
}
