import type { StoreOp } from '../harness/faulty-store';
import type { ActionScript } from './impact';
import type { Random } from './random';

/** A store fault the explorer injects: the layer's faults, `hang` lasting until the faults heal. */
export type StoreFaultKind = 'throw' | 'fail' | 'fail-after' | 'hang' | 'delay';

/** What a listener does on its next call in a process. */
export type ListenerFaultKind = 'throw-before-write' | 'throw-after-write' | 'never-settles' | 'slow';

export type Step =
  /** The action's next lifecycle event happens at impact.com: the API shows it, its postback is queued. */
  | { readonly kind: 'happen'; readonly action: number }
  /** impact.com sends the postback (one attempt, not waited for) to a process. */
  | { readonly kind: 'send'; readonly postback: number; readonly process: number }
  /** A reconciliation run starts in a process (not waited for). */
  | { readonly kind: 'reconcile'; readonly process: number }
  | { readonly kind: 'store-fault'; readonly process: number; readonly op: StoreOp; readonly fault: StoreFaultKind }
  | { readonly kind: 'listener-fault'; readonly process: number; readonly fault: ListenerFaultKind }
  /** The process dies (its connections cut, nothing more of it runs) and starts again later. */
  | { readonly kind: 'kill'; readonly process: number }
  | { readonly kind: 'restart'; readonly process: number }
  /** Failed inbox rows made pending again, as an operator does. */
  | { readonly kind: 'retry-dead'; readonly process: number }
  /** Real time passes. */
  | { readonly kind: 'wait'; readonly ms: number };

export interface PlanSettings {
  readonly steps: number;
  readonly processes: number;
  /** Whether processes may die (a store that forgets on restart: no). */
  readonly kills: boolean;
  readonly inbox: boolean;
  /** Whether the store answers synchronously (throw) or not (fail). */
  readonly synchronous: boolean;
}

const DIRECT_OPS: readonly StoreOp[] = ['begin', 'commit', 'release', 'renew', 'readJournal'];
const INBOX_OPS: readonly StoreOp[] = [
  'inbox.add',
  'inbox.next',
  'row.start',
  'row.commit',
  'row.recordFailure',
  'row.renew',
];

/**
 * A random plan: actions' events happen over the run while impact.com sends, and resends,
 * their postbacks to any process, out of order at times; between them, store and listener
 * faults, reconciliation runs, deaths and restarts, and pauses of real time.
 */
export function writePlan(random: Random, scripts: readonly ActionScript[], settings: PlanSettings): Step[] {
  const steps: Step[] = [];
  const left = scripts.map((script) => script.events.length);
  let postbacks = 0;
  const dead = new Set<number>();
  const ops = settings.inbox ? [...DIRECT_OPS, ...INBOX_OPS] : DIRECT_OPS;
  const process = (): number => random.int(0, settings.processes - 1);
  for (let index = 0; index < settings.steps; index += 1) {
    const kind = random.weighted<Step['kind']>([
      ['happen', left.some((count) => count > 0) ? 4 : 0],
      ['send', postbacks > 0 ? 8 : 0],
      ['reconcile', 1],
      ['store-fault', 2],
      ['listener-fault', 2],
      ['kill', settings.kills && dead.size < settings.processes ? 0.7 : 0],
      ['restart', dead.size > 0 ? 2 : 0],
      ['retry-dead', settings.inbox ? 0.5 : 0],
      ['wait', 2],
    ]);
    switch (kind) {
      case 'happen': {
        const candidates = left.flatMap((count, action) => (count > 0 ? [action] : []));
        const action = random.pick(candidates);
        left[action] = (left[action] ?? 1) - 1;
        postbacks += 1;
        steps.push({ kind, action });
        // Most postbacks go out at once; the rest wait for a later send.
        if (random.chance(0.8)) steps.push({ kind: 'send', postback: postbacks - 1, process: process() });
        break;
      }
      case 'send':
        // Mostly a recent one; sometimes an old one again, as a retry comes late.
        steps.push({
          kind,
          postback: random.chance(0.7)
            ? random.int(Math.max(0, postbacks - 3), postbacks - 1)
            : random.int(0, postbacks - 1),
          process: process(),
        });
        break;
      case 'reconcile':
        steps.push({ kind, process: process() });
        break;
      case 'store-fault': {
        const fault = random.weighted<StoreFaultKind>([
          [settings.synchronous ? 'throw' : 'fail', 3],
          ['fail-after', 2],
          ['hang', 1],
          ['delay', 2],
        ]);
        steps.push({ kind, process: process(), op: random.pick(ops), fault });
        break;
      }
      case 'listener-fault':
        steps.push({
          kind,
          process: process(),
          fault: random.weighted<ListenerFaultKind>([
            ['throw-before-write', 3],
            ['throw-after-write', 2],
            ['never-settles', 1],
            ['slow', 2],
          ]),
        });
        break;
      case 'kill': {
        const alive = Array.from({ length: settings.processes }, (_, index) => index).filter(
          (index) => !dead.has(index),
        );
        const victim = random.pick(alive);
        dead.add(victim);
        steps.push({ kind, process: victim });
        break;
      }
      case 'restart': {
        const victim = random.pick([...dead]);
        dead.delete(victim);
        steps.push({ kind, process: victim });
        break;
      }
      case 'retry-dead':
        steps.push({ kind, process: process() });
        break;
      case 'wait':
        steps.push({ kind, ms: random.pick([5, 20, 50, 150, 400]) });
        break;
    }
  }
  return steps;
}

/** A step as one line of a reproduction. */
export function describeStep(step: Step): string {
  switch (step.kind) {
    case 'happen':
      return `action ${step.action}: next event happens`;
    case 'send':
      return `send postback ${step.postback} to process ${step.process}`;
    case 'reconcile':
      return `reconcile in process ${step.process}`;
    case 'store-fault':
      return `process ${step.process}: next ${step.op} ${step.fault}`;
    case 'listener-fault':
      return `process ${step.process}: next listener ${step.fault}`;
    case 'kill':
      return `kill process ${step.process}`;
    case 'restart':
      return `restart process ${step.process}`;
    case 'retry-dead':
      return `retry dead inbox rows from process ${step.process}`;
    case 'wait':
      return `wait ${step.ms} ms`;
  }
}
