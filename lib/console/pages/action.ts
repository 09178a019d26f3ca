import type { HistoryEntry } from '../../history/history-entry';
import { compileFieldIndex } from '../../fields/field-names';
import { ACTION_FIELDS } from '../../fields/field-specs';
import type { PageContext } from '../context';
import { html, senderText, type Html } from '../html';
import { fieldsOf, outcomeOf } from './entries';
import { historyOff, layout, time } from './layout';

// impact.com's keys as the templates write them (Status, ActionStatus, status...), by the field's name.
const ACTION_INDEX = compileFieldIndex(ACTION_FIELDS, new Map());

/** The status and payout an entry's fields carry, whatever keys the template gave them. */
function stateOf(entry: HistoryEntry): string | null {
  if (entry.fields === null) return null;
  let status: string | null = null;
  let payout: string | null = null;
  for (const [key, value] of Object.entries(entry.fields)) {
    if (typeof value !== 'string') continue;
    const { name } = ACTION_INDEX.resolve(key);
    if (name === 'status') status = value;
    if (name === 'payout') payout = value;
  }
  if (status === null && payout === null) return null;
  return `${status ?? '?'} ${payout ?? ''}`.trim();
}

/**
 * One action's timeline, oldest first: each postback, inbox delivery or reconciliation with its
 * outcome and fields, and the state it moved the action from and to (a delivery moves it; a
 * duplicate, a stale state or a refusal does not). The journal's state last.
 */
export async function actionPage(context: PageContext, actionId: string): Promise<Html> {
  const { history } = context.postbacks;
  const title = html`Action ${senderText(actionId)}`;
  if (history === null) return layout(context, '/postbacks', `Action ${actionId}`, historyOff());
  const { state, entries } = await history.action(actionId);
  let current: string | null = null;
  const rows = entries.map((entry) => {
    const moves = entry.outcome === 'delivered';
    const from = current;
    const to = moves ? (stateOf(entry) ?? current) : current;
    if (moves) current = to;
    return html`<tr>
      <td>${time(entry.receivedAt)}</td>
      <td>${entry.trigger}</td>
      <td>${outcomeOf(entry)}</td>
      <td class="num">${entry.status ?? ''}</td>
      <td>${entry.code ?? ''}</td>
      <td>
        ${moves ? html`${senderText(from ?? 'new')} → ${senderText(to)}` : html`<span class="none">unchanged</span>`}
      </td>
      <td>${fieldsOf(entry)}</td>
    </tr>`;
  });
  const journal =
    state === null
      ? html`<p>The journal holds no state of this action.</p>`
      : html`<table class="report">
          <tbody>
            <tr>
              <th>status</th>
              <td>${senderText(state.status)}</td>
            </tr>
            <tr>
              <th>payout</th>
              <td>${senderText(state.payout)}</td>
            </tr>
            <tr>
              <th>amount</th>
              <td>${senderText(state.amount)}</td>
            </tr>
            <tr>
              <th>currency</th>
              <td>${senderText(state.currency)}</td>
            </tr>
            <tr>
              <th>by</th>
              <td>${state.trigger}</td>
            </tr>
            <tr>
              <th>received</th>
              <td>${time(state.receivedAt)}</td>
            </tr>
          </tbody>
        </table>`;
  return layout(
    context,
    '/postbacks',
    `Action ${actionId}`,
    html`<h2>The journal's state</h2>
      ${journal}
      <h2>Timeline, oldest first</h2>
      ${
        rows.length === 0
          ? html`<p>History holds no entry of this action.</p>`
          : html`<table class="entries">
              <thead>
                <tr>
                  <th>received</th>
                  <th>trigger</th>
                  <th>outcome</th>
                  <th class="num">status</th>
                  <th>code</th>
                  <th>state</th>
                  <th>fields</th>
                </tr>
              </thead>
              <tbody>
                ${rows}
              </tbody>
            </table>`
      }`,
    title,
  );
}
