// The partner-center-sync web UI: plain JavaScript modules, no build step, no dependencies.
// This module wires the others together and starts the page.
//
// - dom.js, format.js: building elements from data, and formatting it.
// - api.js: the JSON API and its token; state.js: the view and its URL.
// - tabs.js: the views; referrals.js, pipeline.js, companies.js, runs.js, notifications.js:
//   one per view;
//   filters.js: the referral filters Referrals and Pipeline share; chart.js: SVG bars;
//   download.js: Export CSV.
// - detail.js: the side panel, history.js: its timeline; status.js: the header's status and Sync now.
// - columns.js: the referral table's columns and chooser; views.js: saved views;
//   visits.js: "new since your last visit"; storage.js: what the browser remembers.
// - shortcuts.js: keyboard shortcuts, the help panel and menus.

import { bindTokenDialog } from './js/api.js';
import { bindCompanyControls, loadCompanies } from './js/companies.js';
import { bindDialog, openReferral } from './js/detail.js';
import { $ } from './js/dom.js';
import { bindExport } from './js/download.js';
import { tickTimes } from './js/format.js';
import { bindNotifications, loadNotifications } from './js/notifications.js';
import { loadPipeline } from './js/pipeline.js';
import { bindReferralControls, loadReferrals } from './js/referrals.js';
import { bindRunControls, loadRuns } from './js/runs.js';
import { bindShortcuts } from './js/shortcuts.js';
import { readUrl, view } from './js/state.js';
import { bindStatus, pollStatus } from './js/status.js';
import { bindTabs, registerTab, showTab } from './js/tabs.js';
import { bindViews } from './js/views.js';

registerTab('referrals', loadReferrals);
registerTab('pipeline', loadPipeline);
registerTab('companies', loadCompanies);
registerTab('runs', loadRuns);
registerTab('notifications', loadNotifications);

readUrl();
bindTabs();
bindReferralControls();
bindExport();
bindCompanyControls();
bindRunControls();
bindNotifications();
bindDialog();
bindStatus();
bindTokenDialog();
bindViews();
bindShortcuts();
window.addEventListener('popstate', () => {
  readUrl();
  showTab(view.tab, { push: false });
  if (view.referral) openReferral(view.referral);
  else if ($('detail').open) $('detail').close();
});
setInterval(tickTimes, 20000);
showTab(view.tab, { push: false });
if (view.referral) openReferral(view.referral);
pollStatus();
