import { createRecord } from '../../lib/body/field-record';
import { dedupeKey } from '../../lib/dedupe/dedupe-key';
import { compileFieldIndex } from '../../lib/fields/field-names';
import { ACTION_FIELDS } from '../../lib/fields/field-specs';
import { normalizeFields } from '../../lib/fields/normalize-fields';
import { apiAction, type FakeActionsApi } from '../helpers/fake-actions-api';
import type { Random } from './random';

/** One lifecycle event of an action at impact.com, and the postback that tells of it. */
export interface LifecycleEvent {
  readonly route: 'actions' | 'clearing';
  readonly status: 'PENDING' | 'APPROVED' | 'REVERSED';
  readonly payout: string;
}

/** A postback impact.com sends, again and again until it is answered 2xx. */
export interface Postback {
  readonly id: number;
  readonly actionId: string;
  readonly route: 'actions' | 'clearing';
  readonly fields: Readonly<Record<string, string>>;
  readonly event: LifecycleEvent;
  /** Answered 2xx at least once. */
  acknowledged: boolean;
  /** Every answer's status, 0 for a connection that failed. */
  readonly answers: number[];
}

export interface ActionScript {
  readonly id: string;
  readonly events: readonly LifecycleEvent[];
}

const ACTION_INDEX = compileFieldIndex(ACTION_FIELDS, new Map());

/** The dedupe key the router gives an action's postback: what a 2xx must have recorded. */
export function dedupeKeyOf(route: 'actions' | 'clearing', fields: Readonly<Record<string, string>>): string {
  const record = createRecord();
  for (const [name, value] of Object.entries(fields)) record[name] = value;
  return dedupeKey(route, normalizeFields(record, ACTION_INDEX).canonical);
}

/** A lifecycle event's postback fields, with the amount and currency the Actions API lists. */
export function postbackFields(actionId: string, event: LifecycleEvent): Record<string, string> {
  return {
    ActionId: actionId,
    Status: event.status,
    Payout: event.payout,
    Amount: '100.00',
    Currency: 'USD',
    SubId1: 'user-1',
  };
}

function money(cents: number): string {
  return `${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, '0')}`;
}

/**
 * The scripts of `count` actions, as impact.com would live them: tracked PENDING, modified up
 * to twice (a new payout, still PENDING), then APPROVED or REVERSED, and an approved one
 * sometimes cleared (a postback on the clearing route).
 */
export function writeScripts(random: Random, count: number, prefix: string): ActionScript[] {
  return Array.from({ length: count }, (_, index) => {
    const events: LifecycleEvent[] = [];
    let cents = random.int(1, 40) * 25;
    events.push({ route: 'actions', status: 'PENDING', payout: money(cents) });
    for (let modified = random.int(0, 2); modified > 0; modified -= 1) {
      cents += random.int(1, 20) * 25 * (random.chance(0.3) ? -1 : 1);
      cents = Math.max(25, cents);
      events.push({ route: 'actions', status: 'PENDING', payout: money(cents) });
    }
    if (random.chance(0.7)) {
      events.push({ route: 'actions', status: 'APPROVED', payout: money(cents) });
      if (random.chance(0.5)) events.push({ route: 'clearing', status: 'APPROVED', payout: money(cents) });
    } else {
      events.push({ route: 'actions', status: 'REVERSED', payout: money(cents) });
    }
    return { id: `${prefix}.${index + 1}`, events };
  });
}

/**
 * impact.com as the explorer plays it: each action lives its script one event at a time; an
 * event updates the action as the Actions API lists it and queues its postback.
 */
export class Impact {
  readonly postbacks: Postback[] = [];
  /** How many events of each action have happened. */
  private readonly happened: number[];

  constructor(
    readonly scripts: readonly ActionScript[],
    private readonly api: FakeActionsApi,
  ) {
    this.happened = scripts.map(() => 0);
  }

  /** The action's next event happens; gives its postback, or null when its script is over. */
  happen(action: number): Postback | null {
    const script = this.scripts[action];
    const done = this.happened[action];
    if (script === undefined || done === undefined) return null;
    const event = script.events[done];
    if (event === undefined) return null;
    this.happened[action] = done + 1;
    if (event.route === 'actions') this.api.put(apiAction(script.id, event.status, event.payout));
    const fields = postbackFields(script.id, event);
    const postback: Postback = {
      id: this.postbacks.length,
      actionId: script.id,
      route: event.route,
      fields,
      event,
      acknowledged: false,
      answers: [],
    };
    this.postbacks.push(postback);
    return postback;
  }

  /** Every action that has had an event, with its state at impact.com now. */
  truth(): Map<string, LifecycleEvent> {
    const truth = new Map<string, LifecycleEvent>();
    this.scripts.forEach((script, index) => {
      const done = this.happened[index] ?? 0;
      // The clearing postback tells of no new state: the last lifecycle event is the state.
      const last = script.events
        .slice(0, done)
        .filter((event) => event.route === 'actions')
        .at(-1);
      if (last !== undefined) truth.set(script.id, last);
    });
    return truth;
  }
}
