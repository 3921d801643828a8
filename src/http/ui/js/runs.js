// Sync run history with live counts while a run is going.

import { API, api } from './api.js';
import { runBadge } from './badges.js';
import { openRun } from './detail.js';
import { $, el, showEmpty } from './dom.js';
import { duration, num, plural, timeEl } from './format.js';
import { view, writeUrl } from './state.js';

let runSeq = 0;
const RUN_PAGE = 50;

function counts(run) {
  const parts = [['fetched', run.fetched], ['new', run.inserted], ['updated', run.updated], ['unchanged', run.unchanged], ['missing', run.marked_missing], ['parse errors', run.parse_errors]];
  return el('span', { class: 'counts' }, parts.filter(([label, n]) => n > 0 || label === 'fetched').map(([label, n]) => el('span', {}, el('b', {}, num(n)), ` ${label}`)));
}

export async function loadRuns() {
  const seq = ++runSeq;
  $('r-status').value = view.runs.status;
  const p = new URLSearchParams({ limit: String(RUN_PAGE), offset: String((view.runs.page - 1) * RUN_PAGE) });
  if (view.runs.status) p.set('status', view.runs.status);
  try {
    const { body } = await api(`${API}/sync-runs?${p}`);
    if (seq !== runSeq) return;
    $('runs-body').replaceChildren(...body.items.map((run) => el('tr', { 'data-testid': 'run-row', 'data-id': String(run.id), 'data-status': run.status },
      el('td', { 'data-label': 'Run' }, el('button', { type: 'button', class: 'link', 'data-testid': 'run-open', onclick: () => openRun(run.id) }, `#${run.id}`)),
      el('td', { 'data-label': 'Trigger' }, run.trigger),
      el('td', { 'data-label': 'Mode' }, run.mode),
      el('td', { 'data-label': 'Status' }, runBadge(run.status), run.dry_run ? el('span', { class: 'badge outline' }, 'dry run') : null),
      el('td', { 'data-label': 'Started', class: 'nowrap' }, timeEl(run.started_at || run.queued_at)),
      el('td', { 'data-label': 'Duration', class: 'num nowrap' }, duration(run.duration_seconds)),
      el('td', { 'data-label': 'Counts' }, counts(run)),
      el('td', { 'data-label': 'Error' }, run.error ? el('span', { class: 'error-text', 'data-testid': 'run-error' }, run.error) : null))));
    showEmpty('runs-empty', body.total === 0 ? (view.runs.status ? 'No sync runs with this status.' : 'No sync runs yet.') : '');
    if (body.items.length === 0 && body.total > 0 && view.runs.page > 1) {
      // The page vanished (a filter changed under it): show the last one that exists.
      view.runs.page = Math.ceil(body.total / RUN_PAGE);
      writeUrl(false);
      loadRuns();
      return;
    }
    const first = (view.runs.page - 1) * RUN_PAGE + 1;
    const last = first - 1 + body.items.length;
    $('runs-summary').textContent = body.total === 0 ? '' : `${first.toLocaleString()}–${last.toLocaleString()} of ${plural(body.total, 'run', 'runs')}`;
    $('r-prev').disabled = view.runs.page <= 1;
    $('r-next').disabled = last >= body.total;
  } catch (error) {
    if (seq !== runSeq) return;
    $('runs-body').replaceChildren();
    showEmpty('runs-empty', `Could not load sync runs: ${error.message}`);
  }
}

export function bindRunControls() {
  $('run-filters').addEventListener('submit', (e) => e.preventDefault());
  const update = (changes) => {
    Object.assign(view.runs, changes);
    writeUrl(false);
    loadRuns();
  };
  $('r-status').addEventListener('change', (e) => update({ status: e.target.value, page: 1 }));
  $('r-prev').addEventListener('click', () => update({ page: Math.max(1, view.runs.page - 1) }));
  $('r-next').addEventListener('click', () => update({ page: view.runs.page + 1 }));
}
