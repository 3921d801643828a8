// "New since your last visit": referrals Partner Center updated after this browser last
// opened the page are marked, and the header counts them.
//
// The baseline is read once per tab (sessionStorage), so reloading the page keeps the
// marks of this visit; the visit itself is recorded at once for the next one.

import { API, api } from './api.js';
import { $ } from './dom.js';
import { absoluteDate, plural } from './format.js';
import { load, save } from './storage.js';

const BASELINE_KEY = 'partner-center-sync.visit-baseline';

function readBaseline() {
  let kept = null;
  try {
    kept = sessionStorage.getItem(BASELINE_KEY);
  } catch (_) {
    kept = null;
  }
  if (kept === null) {
    kept = load('last-visit', '') || '';
    try {
      sessionStorage.setItem(BASELINE_KEY, kept);
    } catch (_) {
      // Without session storage a reload starts a new visit; nothing else changes.
    }
    save('last-visit', new Date().toISOString());
  }
  return kept && !Number.isNaN(new Date(kept).getTime()) ? kept : '';
}

/** The previous visit's time (ISO), or '' on a first visit. */
export const baseline = readBaseline();

export const isFresh = (r) => Boolean(baseline && r.updated_at && new Date(r.updated_at) >= new Date(baseline));

let countSeq = 0;

/** Updates the header's count; it hides when nothing is new or on a first visit. */
export async function refreshFreshCount() {
  const button = $('new-since');
  if (!baseline) return;
  const seq = ++countSeq;
  try {
    const { body } = await api(`${API}/referrals?${new URLSearchParams({ updated_since: baseline, limit: '1' })}`);
    if (seq !== countSeq) return;
    button.querySelector('.label').textContent = `${plural(body.total, 'referral', 'referrals')} new since your last visit`;
    button.title = `Updated in Partner Center after ${absoluteDate(baseline)}, ${new Date(baseline).toLocaleTimeString()}`;
    button.dataset.count = String(body.total);
    button.hidden = body.total === 0;
  } catch (_) {
    button.hidden = true;
  }
}
