// A small horizontal stacked bar chart in SVG, drawn by the page itself: no library and
// nothing from a CDN. Like the rest of the page it builds nodes, never markup, so a
// label from the data shows as typed.
//
// Positions are percentages of the chart's width, so it fits any screen without a
// viewBox that would shrink its text; colours come from CSS classes (`seg <class>`), so
// dark mode and the strict style policy both hold.

import { $ } from './dom.js';

function setAttributes(node, attrs) {
  for (const [key, value] of Object.entries(attrs)) if (value !== null && value !== undefined) node.setAttribute(key, String(value));
  return node;
}

/**
 * An empty <svg> from the page's `chart-template`: the HTML parser put it in the SVG
 * namespace, and each part is made in the same one, so the code names no URL at all.
 */
function newChart() {
  const chart = $('chart-template').content.firstElementChild.cloneNode(false);
  const svg = (tag, attrs, ...children) => {
    const node = setAttributes(document.createElementNS(chart.namespaceURI, tag), attrs);
    for (const child of children) node.append(child);
    return node;
  };
  return { chart, svg };
}

const ROW = 30;
const BAR = 18;
/** Where the bars start and how wide they may grow, leaving room for the labels. */
const LABEL_WIDTH = 26;
const BAR_WIDTH = 52;

/**
 * `bars`: `[{ label, total, text, segments: [{ value, className, title }] }]`. Each bar is
 * as long as its `total` against the largest, split into its segments; `text` is written
 * after it. Negative amounts have no length. `label` names the whole chart for screen
 * readers, which read the table beside it for the numbers.
 */
export function barChart(bars, label) {
  const max = Math.max(0, ...bars.map((bar) => bar.total));
  const { chart, svg } = newChart();
  setAttributes(chart, { class: 'chart', width: '100%', height: bars.length * ROW, role: 'img', 'aria-label': label, 'data-testid': 'pipeline-chart' });
  bars.forEach((bar, i) => {
    const middle = i * ROW + ROW / 2;
    chart.append(svg('text', { x: 0, y: middle, class: 'chart-label', 'dominant-baseline': 'middle' }, bar.label));
    const track = svg('svg', { x: `${LABEL_WIDTH}%`, y: middle - BAR / 2, width: `${BAR_WIDTH}%`, height: BAR });
    track.append(svg('rect', { x: 0, y: 0, width: '100%', height: BAR, class: 'chart-track', rx: 3 }));
    let start = 0;
    for (const segment of bar.segments) {
      const width = max > 0 ? (Math.max(0, segment.value) / max) * 100 : 0;
      if (width <= 0) continue;
      track.append(svg('rect', { x: `${start}%`, y: 0, width: `${width}%`, height: BAR, class: `seg ${segment.className}`, 'data-testid': 'chart-segment' },
        svg('title', {}, segment.title)));
      start += width;
    }
    chart.append(track);
    chart.append(svg('text', { x: `${LABEL_WIDTH + BAR_WIDTH + 2}%`, y: middle, class: 'chart-value', 'dominant-baseline': 'middle' }, bar.text));
  });
  return chart;
}
