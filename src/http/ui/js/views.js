// Saved views: named sets of referral filters kept in this browser. Each is a link to the
// page with its filters in the URL (plus `view=<name>`), so it can be shared as it is; a
// view opened from someone else's link can be saved here with one click.

import { $, el } from './dom.js';
import { filterParams, view, writeUrl } from './state.js';
import { load, save } from './storage.js';
import { toast } from './toast.js';

const savedViews = () => load('views', []).filter((v) => v && typeof v.name === 'string' && typeof v.query === 'string');

function viewUrl(name, query) {
  const p = new URLSearchParams(query);
  p.set('view', name);
  return `${location.origin}${location.pathname}?${p}`;
}

/** Shows the saved view's filters, as the back button would (main.js listens). */
function open(url) {
  history.pushState(null, '', url);
  window.dispatchEvent(new PopStateEvent('popstate'));
  $('views-menu').open = false;
}

function store(name, query) {
  save('views', [...savedViews().filter((v) => v.name !== name), { name, query }].sort((a, b) => a.name.localeCompare(b.name)));
}

const isSaved = (name) => savedViews().some((v) => v.name === name);

/** Redraws the list of saved views. */
function renderViews() {
  const views = savedViews();
  $('views-list').replaceChildren(...(views.length === 0
    ? [el('li', { class: 'muted small' }, 'No saved views yet.')]
    : views.map((v) => el('li', {},
      el('a', {
        href: viewUrl(v.name, v.query), 'data-testid': 'saved-view',
        onclick: (e) => {
          if (e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey || e.altKey) return;
          e.preventDefault();
          open(e.currentTarget.href);
        },
      }, v.name),
      el('button', {
        type: 'button', class: 'icon-btn small', 'aria-label': `Delete view ${v.name}`, 'data-testid': 'delete-view',
        onclick: () => {
          save('views', savedViews().filter((s) => s.name !== v.name));
          renderViews();
        },
      }, '×')))));
}

/** The chip naming the saved view on screen, with Save when this browser lacks it. */
export function showViewChip() {
  const current = view.viewName;
  $('view-chip').hidden = !current;
  $('view-chip-text').textContent = current;
  $('view-chip-save').hidden = !current || isSaved(current);
  if (current) $('chip-row').hidden = false;
}

export function bindViews() {
  renderViews();
  $('views-menu').addEventListener('toggle', renderViews);
  $('view-save-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const name = $('view-name').value.trim();
    if (!name) return;
    store(name, filterParams().toString());
    view.viewName = name;
    $('view-name').value = '';
    writeUrl(false);
    renderViews();
    showViewChip();
    toast('success', 'View saved', `“${name}” is in Views; its link can be shared.`);
  });
  $('view-chip-save').addEventListener('click', () => {
    store(view.viewName, filterParams().toString());
    renderViews();
    showViewChip();
    toast('success', 'View saved', `“${view.viewName}” is in Views.`);
  });
  $('view-copy').addEventListener('click', async () => {
    const url = location.href;
    try {
      await navigator.clipboard.writeText(url);
      toast('success', 'Link copied', url);
    } catch (_) {
      toast('info', 'Copy this link', url);
    }
  });
}
