// Status badges for referrals and runs.

import { el, slug } from './dom.js';

export function statusBadge(status) {
  return status ? el('span', { class: `badge s-${slug(status)}`, 'data-testid': 'badge-status' }, status) : null;
}

export function substatusBadge(substatus) {
  return substatus && substatus !== 'None' ? el('span', { class: `badge ss-${slug(substatus)}`, 'data-testid': 'badge-substatus' }, substatus) : null;
}

export const runBadge = (status) => el('span', { class: `badge r-${slug(status)}`, 'data-testid': 'run-status' }, status);
