import type { PostbackErrorCode } from '../../errors';
import type { HistoryEntry } from '../../history/history-entry';
import type { PageContext } from '../context';
import { html, senderText, type Html } from '../html';
import { refusalReason, unexpandedPlaceholders } from '../refusal-reasons';
import { fieldsOf } from './entries';
import { historyOff, layout, time } from './layout';

/** How many refusals the page reads, newest first. */
const READ = 1000;
const EXAMPLES = 5;

/** Refused postbacks grouped by code: what each means and what to fix, with the newest examples. */
export async function refusedPage(context: PageContext): Promise<Html> {
  const { history } = context.postbacks;
  if (history === null) return layout(context, '/refused', 'Refused', historyOff());
  const { entries } = await history.list({ outcome: 'rejected', limit: READ });
  const groups = new Map<PostbackErrorCode | null, HistoryEntry[]>();
  for (const entry of entries) groups.set(entry.code, [...(groups.get(entry.code) ?? []), entry]);
  const sections = [...groups.entries()]
    .sort(([, a], [, b]) => b.length - a.length)
    .map(([code, group]) => {
      const { reason, fix } = refusalReason(code);
      const placeholders = [...new Set(group.flatMap(unexpandedPlaceholders))];
      const newest = group[0];
      return html`<section id="${code ?? 'none'}">
        <h2>${code ?? 'no code'}: ${group.length}</h2>
        <p><strong>Why:</strong> ${reason}</p>
        <p><strong>What to do:</strong> ${fix}</p>
        ${placeholders.length === 0 ? '' : html`<p><strong>Unexpanded in the template:</strong> ${placeholders.map((text, index) => html`${index === 0 ? '' : ', '}<code>${senderText(text)}</code>`)}</p>`}
        <p>Last seen ${time(newest?.receivedAt ?? null)}.</p>
        <table class="entries">
          <thead>
            <tr>
              <th>received</th>
              <th>address</th>
              <th>path</th>
              <th>fields</th>
            </tr>
          </thead>
          <tbody>
            ${group.slice(0, EXAMPLES).map(
              (entry) =>
                html`<tr>
                  <td>${time(entry.receivedAt)}</td>
                  <td>${senderText(entry.ip)}</td>
                  <td>${senderText(entry.path)}</td>
                  <td>${fieldsOf(entry)}</td>
                </tr>`,
            )}
          </tbody>
        </table>
      </section>`;
    });
  const intro = html`<p>
    The newest ${READ.toLocaleString('en')} refused postbacks at most, grouped by why they were refused. Refusals beyond
    <code>maxRejectedPerMinute</code> are counted, not kept: ${history.stats().notStored} since the process started.
  </p>`;
  return layout(
    context,
    '/refused',
    'Refused',
    html`${intro}${sections.length === 0 ? html`<p>No refused postbacks.</p>` : sections}`,
  );
}
