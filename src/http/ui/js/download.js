// "Export CSV": every referral matching the current filters (not just the page on
// screen), in the table's order, as the server's CSV. The server streams it; the page
// saves what arrives under the server's file name.

import { API, apiFile } from './api.js';
import { $, el } from './dom.js';
import { apiFilterParams } from './filters.js';
import { view } from './state.js';
import { toast } from './toast.js';

async function exportCsv() {
  const button = $('export-csv');
  if (button.classList.contains('busy')) return;
  const p = apiFilterParams();
  p.set('sort', view.ref.sort);
  p.set('order', view.ref.order);
  button.classList.add('busy');
  button.setAttribute('aria-busy', 'true');
  try {
    const { blob, name } = await apiFile(`${API}/referrals.csv?${p}`, 'text/csv');
    const url = URL.createObjectURL(blob);
    const link = el('a', { href: url, download: name, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    // The download has its own copy once it starts; the URL is only needed until then.
    setTimeout(() => URL.revokeObjectURL(url), 60000);
    toast('success', 'Export ready', `${name} has every referral matching these filters.`);
  } catch (error) {
    toast('error', 'Export failed', error.message);
  } finally {
    button.classList.remove('busy');
    button.removeAttribute('aria-busy');
  }
}

export function bindExport() {
  $('export-csv').addEventListener('click', exportCsv);
}
