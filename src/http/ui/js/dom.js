// Building the page from data without ever turning data into markup: elements are made
// with createElement and textContent, so names with quotes, tags or emoji show as typed.
// The page's CSP forbids inline script as a second line of defence.

export const $ = (id) => document.getElementById(id);

/** Builds an element; strings become text nodes, never HTML. */
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** A CSS class fragment from a value the server sent (`Closed` -> `closed`). */
export const slug = (s) => String(s || '').toLowerCase().replace(/[^a-z]/g, '');

/** Shows `message` in an empty-state block, or hides the block when it is empty. */
export function showEmpty(id, message) {
  const node = $(id);
  node.textContent = message;
  node.hidden = !message;
}
