// Short notices in the corner; errors stay longer and are announced as alerts.

import { $, el } from './dom.js';

export function toast(kind, title, message) {
  const node = el('div', { class: `toast ${kind}`, role: kind === 'error' ? 'alert' : 'status', 'data-testid': 'toast', 'data-kind': kind },
    el('div', { class: 'msg' }, el('strong', {}, title), message ? el('span', { class: 'small', title: message }, message) : null),
    el('button', { type: 'button', 'aria-label': 'Dismiss', onclick: () => node.remove() }, '×'));
  $('toasts').append(node);
  setTimeout(() => node.remove(), kind === 'error' ? 15000 : 8000);
}
