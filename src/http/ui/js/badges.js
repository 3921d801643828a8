// Status badges for referrals and runs.

import { el, slug } from './dom.js';

export function statusBadge(status) {
  return status ? el('span', { class: `badge s-${slug(status)}`, 'data-testid': 'badge-status' }, status) : null;
}

function substatusBadge(substatus) {
  return substatus && substatus !== 'None' ? el('span', { class: `badge ss-${slug(substatus)}`, 'data-testid': 'badge-substatus' }, substatus) : null;
}

/**
 * Status and substatus as one phrase, "Closed · Won": the separator is real text so
 * screen readers and copied text do not run the two words together ("ClosedWon").
 */
export function statusBadges(status, substatus) {
  const badges = [statusBadge(status), substatusBadge(substatus)].filter(Boolean);
  if (badges.length === 0) return null;
  const parts = badges.flatMap((badge, i) => (i === 0 ? [badge] : [el('span', { class: 'badge-sep' }, ' · '), badge]));
  return el('span', { class: 'badge-pair', 'data-testid': 'status-badges' }, parts);
}

export const runBadge = (status) => el('span', { class: `badge r-${slug(status)}`, 'data-testid': 'run-status' }, status);
