// What the page shows (tab, filters, sort, page, open referral), mirrored in the URL so a
// view can be shared or bookmarked and the back button works.

const DEFAULT_SORT = { sort: 'updated_at', order: 'desc' };
/** Filters kept as text, under the API's own parameter names (so the URL reads the same). */
export const TEXT_FILTERS = ['q', 'status', 'substatus', 'type', 'direction', 'qualification', 'country', 'currency',
  'expiring_within_days', 'min_value', 'max_value', 'updated_since', 'domain'];

/** Every filter at its "show everything" value (include_missing aside: it is a display choice). */
export const NO_FILTERS = { ...Object.fromEntries(TEXT_FILTERS.map((key) => [key, ''])), fresh: false };

export const TABS = ['referrals', 'pipeline', 'companies', 'runs', 'notifications'];

export const view = {
  tab: 'referrals',
  ref: { ...NO_FILTERS, include_missing: false, sort: 'updated_at', order: 'desc', page: 1, size: 50 },
  co: { q: '', with: true, page: 1 },
  runs: { status: '', page: 1 },
  referral: null,
  /** The saved view the filters came from, until they change. */
  viewName: '',
};

/** Columns whose natural first direction is largest or newest first. */
export const descendingFirst = (column) => ['updated_at', 'deal_value', 'created_at'].includes(column);

export const hasReferralFilters = () => TEXT_FILTERS.some((k) => view.ref[k]) || view.ref.fresh;

const page = (value) => Math.max(1, parseInt(value, 10) || 1);

export function readUrl() {
  const p = new URLSearchParams(location.search);
  view.tab = TABS.includes(p.get('tab')) ? p.get('tab') : 'referrals';
  const r = view.ref;
  for (const key of TEXT_FILTERS) r[key] = p.get(key) || '';
  r.include_missing = p.get('include_missing') === 'true';
  r.fresh = p.get('fresh') === 'true';
  r.sort = p.get('sort') || DEFAULT_SORT.sort;
  r.order = p.get('order') === 'asc' ? 'asc' : (p.get('order') === 'desc' ? 'desc' : (descendingFirst(r.sort) ? 'desc' : 'asc'));
  r.page = page(p.get('page'));
  r.size = [25, 50, 100, 200].includes(parseInt(p.get('size'), 10)) ? parseInt(p.get('size'), 10) : 50;
  view.co.q = p.get('cq') || '';
  view.co.with = p.get('cwith') !== 'false';
  view.co.page = page(p.get('cpage'));
  view.runs.status = p.get('rstatus') || '';
  view.runs.page = page(p.get('rpage'));
  view.referral = p.get('referral');
  view.viewName = p.get('view') || '';
}

/** The referral filters, sort and page size (what a saved view keeps), after `p`'s own. */
export function filterParams(p = new URLSearchParams(), { withPage = false } = {}) {
  const r = view.ref;
  for (const key of TEXT_FILTERS) if (r[key]) p.set(key, r[key]);
  if (r.include_missing) p.set('include_missing', 'true');
  if (r.fresh) p.set('fresh', 'true');
  if (r.sort !== DEFAULT_SORT.sort || r.order !== DEFAULT_SORT.order) {
    p.set('sort', r.sort);
    p.set('order', r.order);
  }
  if (withPage && r.page > 1) p.set('page', String(r.page));
  if (r.size !== 50) p.set('size', String(r.size));
  return p;
}

export function writeUrl(push) {
  const p = new URLSearchParams();
  if (view.tab !== 'referrals') p.set('tab', view.tab);
  filterParams(p, { withPage: true });
  if (view.co.q) p.set('cq', view.co.q);
  if (!view.co.with) p.set('cwith', 'false');
  if (view.co.page > 1) p.set('cpage', String(view.co.page));
  if (view.runs.status) p.set('rstatus', view.runs.status);
  if (view.runs.page > 1) p.set('rpage', String(view.runs.page));
  if (view.referral) p.set('referral', view.referral);
  if (view.viewName) p.set('view', view.viewName);
  const qs = p.toString();
  const url = qs ? `${location.pathname}?${qs}` : location.pathname;
  if (url !== `${location.pathname}${location.search}`) history[push ? 'pushState' : 'replaceState'](null, '', url);
}
