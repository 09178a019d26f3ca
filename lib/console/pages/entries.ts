import type { HistoryEntry } from '../../history/history-entry';
import { consoleUrl, html, segment, senderText, type Html } from '../html';
import { time } from './layout';

/** Every field as received, keys and values as the sender wrote them, in a disclosure (no script needed). */
export function fieldsOf(entry: HistoryEntry): Html {
  if (entry.fields === null) return html`<span class="none">not read</span>`;
  const rows = Object.entries(entry.fields).map(
    ([key, value]) =>
      html`<tr>
        <th>${senderText(key)}</th>
        <td>${senderText(typeof value === 'string' ? value : JSON.stringify(value))}</td>
      </tr>`,
  );
  return html`<details>
    <summary>${rows.length} fields</summary>
    <table class="fields">
      <tbody>
        ${rows}
      </tbody>
    </table>
  </details>`;
}

export function outcomeOf(entry: HistoryEntry): Html {
  return html`<span class="outcome o-${entry.outcome}">${entry.outcome}</span>`;
}

/** The history's entries as a table, newest first (or as given). */
export function entryTable(base: string, entries: readonly HistoryEntry[]): Html {
  if (entries.length === 0) return html`<p>No entries match.</p>`;
  return html`<table class="entries">
    <thead>
      <tr>
        <th>received</th>
        <th>trigger</th>
        <th>route</th>
        <th>format</th>
        <th>outcome</th>
        <th class="num">status</th>
        <th>code</th>
        <th>action</th>
        <th>subId1</th>
        <th>address</th>
        <th class="num">ms</th>
        <th>fields</th>
      </tr>
    </thead>
    <tbody>
      ${entries.map(
        (entry) =>
          html`<tr>
            <td>${time(entry.receivedAt)}</td>
            <td>${entry.trigger}</td>
            <td>${entry.route}</td>
            <td>${entry.format ?? ''}</td>
            <td>${outcomeOf(entry)}</td>
            <td class="num">${entry.status ?? ''}</td>
            <td>${entry.code ?? ''}</td>
            <td>
              ${entry.actionId === null ? '' : html`<a href="${consoleUrl(base, `/actions/${segment(entry.actionId)}`)}">${senderText(entry.actionId)}</a>`}
            </td>
            <td>
              ${entry.subId1 === null ? '' : html`<a href="${consoleUrl(base, '/postbacks', { subId1: entry.subId1 })}">${senderText(entry.subId1)}</a>`}
            </td>
            <td>${senderText(entry.ip)}</td>
            <td class="num">${entry.durationMs.toFixed(1)}</td>
            <td>${fieldsOf(entry)}</td>
          </tr>`,
      )}
    </tbody>
  </table>`;
}
