// The JSON API and its optional bearer token. The token is asked for when a request is
// refused and kept in sessionStorage, so it lives as long as the tab.

import { $ } from './dom.js';

export const API = '/api/v1/partner-center';
const TOKEN_KEY = 'partner-center-sync.api-token';

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

let tokenPrompt = null;

/** Cancel is a plain button, so Enter in the field submits the token (the form's first submit button). */
export function bindTokenDialog() {
  $('token-cancel').addEventListener('click', () => $('token-dialog').close('cancel'));
}

/** Asks for the API token once, however many requests were refused at the same time. */
function askToken(refused) {
  if (tokenPrompt) return tokenPrompt;
  tokenPrompt = new Promise((resolve) => {
    const dialog = $('token-dialog');
    const input = $('token-input');
    input.value = '';
    input.setCustomValidity('');
    const title = $('token-title');
    title.textContent = refused ? 'The API token was refused' : 'API token required';
    dialog.addEventListener('close', () => {
      const value = input.value.trim();
      const ok = dialog.returnValue === 'ok' && value !== '';
      if (ok) sessionStorage.setItem(TOKEN_KEY, value);
      tokenPrompt = null;
      resolve(ok);
    }, { once: true });
    // Escape closes without a value; a stale 'ok' from an earlier prompt must not count.
    dialog.returnValue = '';
    dialog.showModal();
    input.focus();
  });
  return tokenPrompt;
}

/** The headers for a request, with the token when the user has entered one. */
export function withToken(headers) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { ...headers, Authorization: `Bearer ${token}` } : headers;
}

/** Sends a request with the token, asking for one once if it is refused. */
async function send(path, options, accept) {
  // Two attempts at most: the second only after the user entered a token.
  for (let attempt = 0; ; attempt += 1) {
    const token = sessionStorage.getItem(TOKEN_KEY);
    const headers = withToken({ Accept: accept });
    const response = await fetch(path, { ...options, headers, cache: 'no-store' });
    if (response.status === 401 && attempt === 0 && await askToken(Boolean(token))) continue;
    return response;
  }
}

async function jsonBody(response) {
  try {
    return await response.json();
  } catch (_) {
    return null;
  }
}

const failure = (response, body) => new HttpError(response.status, (body && body.error) || `The server answered HTTP ${response.status}.`);

export async function api(path, options = {}) {
  const response = await send(path, options, 'application/json');
  const body = await jsonBody(response);
  if (!response.ok) throw failure(response, body);
  return { status: response.status, body };
}

/**
 * A file from the API, whole, with the name the server gives it. Fetched rather than
 * linked because a link cannot carry the bearer token.
 */
export async function apiFile(path, accept) {
  const response = await send(path, {}, accept);
  if (!response.ok) throw failure(response, await jsonBody(response));
  const disposition = response.headers.get('Content-Disposition') || '';
  const match = /filename="([^"]+)"/.exec(disposition);
  return { blob: await response.blob(), name: match ? match[1] : 'download' };
}
