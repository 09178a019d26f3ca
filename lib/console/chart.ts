import type { HistoryCount, HistoryOutcome } from '../history/history-entry';
import { html, type Html } from './html';

export const OUTCOMES: readonly HistoryOutcome[] = ['delivered', 'stored', 'duplicate', 'stale', 'rejected', 'failed'];

const WIDTH = 960;
const HEIGHT = 180;
const AXIS = 20;

/**
 * Postbacks per slice of time by outcome, as stacked bars: an SVG drawn here, so the page needs
 * no script. Each bar has a title (the slice's time and counts) that a browser shows on hover.
 */
/** The start of the first of `slices` slices of `sliceMs` whose last holds `now`. */
export function firstSlice(now: number, sliceMs: number, slices: number): number {
  return (Math.floor(now / sliceMs) - slices + 1) * sliceMs;
}

export function outcomeChart(counts: readonly HistoryCount[], now: number, sliceMs: number, slices: number): Html {
  const table = Array.from({ length: slices }, () => new Map<HistoryOutcome, number>());
  const first = firstSlice(now, sliceMs, slices);
  for (const count of counts) {
    const index = Math.floor((count.slice - first) / sliceMs);
    const slice = table[index];
    if (slice === undefined) continue;
    slice.set(count.outcome, (slice.get(count.outcome) ?? 0) + count.count);
  }
  const totals = table.map((slice) => [...slice.values()].reduce((sum, value) => sum + value, 0));
  const highest = Math.max(1, ...totals);
  const barWidth = WIDTH / slices;
  const bars = table.map((slice, index) => {
    let top = HEIGHT;
    const time = new Date(first + index * sliceMs).toISOString().slice(11, 16);
    const title = `${time} UTC: ${OUTCOMES.map((outcome) => `${outcome} ${slice.get(outcome) ?? 0}`).join(', ')}`;
    const parts = OUTCOMES.map((outcome) => {
      const value = slice.get(outcome) ?? 0;
      if (value === 0) return null;
      const height = (value / highest) * HEIGHT;
      top -= height;
      return html`<rect
        class="o-${outcome}"
        x="${(index * barWidth + 1).toFixed(1)}"
        y="${top.toFixed(1)}"
        width="${(barWidth - 2).toFixed(1)}"
        height="${height.toFixed(1)}"
      ></rect>`;
    });
    return html`<g><title>${title}</title>${parts}</g>`;
  });
  const labels = [0, 0.25, 0.5, 0.75].map((fraction) => {
    const index = Math.round(slices * fraction);
    const time = new Date(first + index * sliceMs).toISOString().slice(11, 16);
    return html`<text x="${(index * barWidth).toFixed(1)}" y="${HEIGHT + AXIS - 5}">${time}</text>`;
  });
  return html`<svg
    class="chart"
    viewBox="0 0 ${WIDTH} ${HEIGHT + AXIS}"
    role="img"
    aria-label="Postbacks per ${sliceMs / 60_000} minutes by outcome, highest ${highest}"
  >
    <line x1="0" y1="${HEIGHT}" x2="${WIDTH}" y2="${HEIGHT}" class="axis"></line>
    ${bars}${labels}
    <text x="4" y="12">${highest} a slice at most</text>
  </svg>`;
}
