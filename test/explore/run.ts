import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import express from 'express';
import { createPostbackRouter, type PostbackRouter, type PostbackStore } from '../../lib';
import { FaultyStore, type Fault } from '../harness/faulty-store';
import { worthCents } from '../harness/host-ledger';
import { watchPackageTimers } from '../harness/package-timers';
import { LOOPBACK } from '../helpers/create-app';
import { FakeActionsApi } from '../helpers/fake-actions-api';
import { startServer, type RunningServer } from '../helpers/server';
import { createBackend, type ProcessStore, type StoreName } from './backends';
import { dedupeKeyOf, Impact, writeScripts, type Postback } from './impact';
import { describeStep, writePlan, type ListenerFaultKind, type Step, type StoreFaultKind } from './plan';
import { Random } from './random';

export type DeliveryName = 'direct' | 'inbox';

export interface RunSettings {
  readonly store: StoreName;
  readonly delivery: DeliveryName;
  readonly seed: number;
  /** Steps in the plan written from the seed. */
  readonly steps: number;
  /** Actions impact.com tracks in the run. */
  readonly actions: number;
  /** Wraps each process's store: a planted defect, to show that the explorer finds it. */
  readonly plant?: (store: PostbackStore<unknown>) => PostbackStore<unknown>;
}

export interface RunResult {
  readonly settings: RunSettings;
  readonly plan: readonly Step[];
  /** Each invariant broken, with what showed it; empty when all held. */
  readonly violations: readonly string[];
  readonly figures: {
    readonly requests: number;
    readonly storeFaults: number;
    readonly listenerFaults: number;
    readonly kills: number;
    readonly reconciliations: number;
    readonly ledgerEntries: number;
    readonly durationMs: number;
  };
}

const LISTENER_TIMEOUT_MS = 200;
const MAX_ATTEMPTS = 4;
const QUIET_DEADLINE_MS = 30_000;
/** How long impact.com waits for an answer before it drops the request. */
const ANSWER_WITHIN_MS = 15_000;
const SID = 'IRexplore';
const TOKEN = 'explore-auth-token';
const FINAL = new Set(['APPROVED', 'REVERSED']);

function storeFault(kind: StoreFaultKind): Fault {
  switch (kind) {
    case 'delay':
      return { kind: 'delay', ms: 300 };
    case 'hang':
      return { kind: 'hang' };
    case 'throw':
      return { kind: 'throw' };
    case 'fail':
      return { kind: 'fail' };
    case 'fail-after':
      return { kind: 'fail-after' };
  }
}

const forever = (): Promise<never> => new Promise<never>(() => undefined);

/** Read anew after an await: a receiver may die meanwhile. */
function isDead(receiver: Receiver): boolean {
  return receiver.dead;
}

/** One receiver process of the run: its store, router and server, until it dies. */
interface Receiver {
  readonly index: number;
  readonly generation: number;
  readonly store: FaultyStore<unknown>;
  readonly processStore: ProcessStore;
  readonly router: PostbackRouter<unknown>;
  readonly server: RunningServer;
  dead: boolean;
  readonly listenerFaults: ListenerFaultKind[];
}

/**
 * Runs one seeded exploration: writes impact.com's actions and a plan from the seed (or takes
 * the plan given, when minimizing), plays it against receivers on the store, then lets every
 * fault heal and impact.com retry until all is acknowledged, reconciles once more, and checks
 * the invariants against impact.com's own state and the host's ledger.
 */
export async function explore(settings: RunSettings, given?: readonly Step[]): Promise<RunResult> {
  const started = Date.now();
  const timers = watchPackageTimers();
  const random = new Random(settings.seed);
  const scripts = writeScripts(random, settings.actions, `E${settings.seed}`);
  const backend = await createBackend(settings.store);
  const inbox = settings.delivery === 'inbox';
  if (inbox && !backend.inbox) throw new Error(`${settings.store} keeps no inbox`);
  const plan =
    given ??
    writePlan(new Random(settings.seed ^ 0x5bd1e995), scripts, {
      steps: settings.steps,
      processes: backend.processes,
      kills: backend.durable,
      inbox,
      synchronous: settings.store === 'memory' || settings.store === 'sqlite',
    });
  const api = new FakeActionsApi(SID, TOKEN);
  await api.start();
  const impact = new Impact(scripts, api);
  const violations: string[] = [];
  const figures = { requests: 0, storeFaults: 0, listenerFaults: 0, kills: 0, reconciliations: 0, ledgerEntries: 0 };
  const escaped: unknown[] = [];
  const onEscape = (error: unknown): void => void escaped.push(error);
  process.prependListener('uncaughtException', onEscape);
  process.prependListener('unhandledRejection', onEscape);

  const receivers: Receiver[] = [];
  const retired: Receiver[] = [];
  const running = new Set<{ readonly settled: Promise<unknown>; readonly receiver: Receiver }>();
  /** Listener calls per postback key, and dead events per key, for the inbox's bounds. */
  const calls = new Map<string, number>();
  const deadEvents = new Map<string, number>();
  let retriesOfDead = 0;
  const finalSeen = new Set<string>();
  const since = new Date(started - 24 * 60 * 60 * 1000);

  /** Work started in a receiver; a dead one's may never end, as nothing of it runs any more. */
  function track(promise: Promise<unknown>, receiver: Receiver | undefined): void {
    if (receiver === undefined) return;
    const settled = promise.catch(() => undefined);
    const entry = { settled, receiver };
    running.add(entry);
    void settled.finally(() => running.delete(entry));
  }

  async function start(index: number, generation: number): Promise<Receiver> {
    // The process id keeps the names apart when several explorations share one database: a crash
    // ends the connections by this name.
    const processStore = await backend.open(`explore-${process.pid}-${settings.seed}-p${index}-g${generation}`);
    const store = new FaultyStore(
      settings.plant?.(processStore.store) ?? processStore.store,
      processStore.loseConnection,
    );
    const router = createPostbackRouter<unknown>({
      allowedIps: LOOPBACK,
      store,
      listenerTimeout: LISTENER_TIMEOUT_MS,
      ...(inbox
        ? { delivery: 'inbox', maxAttempts: MAX_ATTEMPTS, backoff: { baseMs: 20, maxMs: 80 }, concurrency: 2 }
        : {}),
    });
    const receiver: Receiver = {
      index,
      generation,
      store,
      processStore,
      router,
      server: await startServer(express().use('/impact', router.router)),
      dead: false,
      listenerFaults: [],
    };
    router.on('action', async (event, ctx) => {
      calls.set(event.meta.key, (calls.get(event.meta.key) ?? 0) + 1);
      const fault = receiver.listenerFaults.shift();
      if (receiver.dead || fault === 'never-settles') return forever();
      if (fault === 'slow') await sleep(LISTENER_TIMEOUT_MS * 1.5);
      if (fault === 'throw-before-write') throw new Error('the host failed before its write');
      // A dead process writes nothing more (it may have died while this one waited).
      if (isDead(receiver)) return forever();
      await backend.ledger.write(event, ctx);
      if (fault === 'throw-after-write') throw new Error('the host failed after its write');
      return undefined;
    });
    router.on('dead', (event) => {
      const key = event?.meta.key ?? '(unreadable)';
      deadEvents.set(key, (deadEvents.get(key) ?? 0) + 1);
    });
    // Failures are reported here as they should be; the invariants judge their effects.
    router.on('error', () => undefined);
    receivers[index] = receiver;
    return receiver;
  }

  async function send(postback: Postback, receiver: Receiver | undefined): Promise<void> {
    figures.requests += 1;
    if (receiver === undefined || receiver.dead) {
      postback.answers.push(0);
      return;
    }
    const query = new URLSearchParams(postback.fields).toString();
    const status = await new Promise<number>((resolve) => {
      const req = http.get(`${receiver.server.base}/impact/${postback.route}?${query}`, { agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', () => resolve(0));
      });
      req.on('error', () => resolve(0));
      // impact.com gives up on a request in the end, and retries it.
      req.setTimeout(ANSWER_WITHIN_MS, () => {
        if (!receiver.dead) {
          violations.push(
            `I6 liveness: a live receiver did not answer postback ${postback.id} within ${ANSWER_WITHIN_MS} ms`,
          );
        }
        req.destroy();
        resolve(0);
      });
    });
    postback.answers.push(status);
    if (status >= 200 && status < 300) postback.acknowledged = true;
  }

  async function kill(receiver: Receiver): Promise<void> {
    receiver.dead = true;
    receiver.store.kill();
    retired.push(receiver);
    await receiver.server.close();
    await receiver.processStore.crash();
  }

  function reconcile(receiver: Receiver | undefined): Promise<unknown> {
    if (receiver === undefined || receiver.dead) return Promise.resolve();
    figures.reconciliations += 1;
    return receiver.router.reconcile({ accountSid: SID, authToken: TOKEN, baseUrl: api.baseUrl, since });
  }

  /** Reads the journal of every action so far: once final, an action must never read PENDING again. */
  async function watchJournal(): Promise<void> {
    const subjects = impact.scripts.map((script) => `action:${script.id}`);
    const records = await backend.journal(subjects);
    records.forEach((record, index) => {
      const status = record?.['status'];
      const subject = subjects[index] as string;
      if (typeof status === 'string' && FINAL.has(status)) finalSeen.add(subject);
      else if (status === 'PENDING' && finalSeen.has(subject)) {
        violations.push(`I3 no final state undone: the journal of ${subject} went from a final state back to PENDING`);
      }
    });
  }

  async function play(step: Step): Promise<void> {
    switch (step.kind) {
      case 'happen':
        impact.happen(step.action);
        return;
      case 'send': {
        const postback = impact.postbacks[step.postback];
        if (postback !== undefined) track(send(postback, receivers[step.process]), receivers[step.process]);
        return;
      }
      case 'reconcile':
        track(reconcile(receivers[step.process]), receivers[step.process]);
        return;
      case 'store-fault': {
        const receiver = receivers[step.process];
        if (receiver === undefined || receiver.dead) return;
        figures.storeFaults += 1;
        receiver.store.inject({ op: step.op, fault: storeFault(step.fault) });
        return;
      }
      case 'listener-fault': {
        const receiver = receivers[step.process];
        if (receiver === undefined || receiver.dead) return;
        figures.listenerFaults += 1;
        receiver.listenerFaults.push(step.fault);
        return;
      }
      case 'kill': {
        const receiver = receivers[step.process];
        if (receiver === undefined || receiver.dead) return;
        figures.kills += 1;
        await kill(receiver);
        return;
      }
      case 'restart': {
        const receiver = receivers[step.process];
        if (receiver === undefined || !receiver.dead) return;
        await start(step.process, receiver.generation + 1);
        return;
      }
      case 'retry-dead': {
        const receiver = receivers[step.process];
        if (receiver === undefined || receiver.dead || receiver.router.inbox === null) return;
        retriesOfDead += 1;
        track(receiver.router.inbox.retry({ status: 'dead' }), receiver);
        return;
      }
      case 'wait':
        await sleep(step.ms);
        return;
    }
  }

  /** Every fault heals, the dead start again, and impact.com retries until all is acknowledged. */
  async function quiet(): Promise<void> {
    for (const receiver of receivers) {
      receiver.store.heal();
      receiver.listenerFaults.splice(0);
    }
    for (const receiver of [...receivers]) if (receiver.dead) await start(receiver.index, receiver.generation + 1);
    const deadline = Date.now() + QUIET_DEADLINE_MS;
    const live = (): Receiver => {
      const alive = receivers.filter((receiver) => !receiver.dead);
      return alive[Math.floor(Math.random() * alive.length)] as Receiver;
    };
    for (;;) {
      const waiting = impact.postbacks.filter((postback) => !postback.acknowledged);
      if (waiting.length === 0) break;
      if (Date.now() > deadline) {
        violations.push(
          `I6 liveness: ${waiting.length} postback(s) still not acknowledged ${QUIET_DEADLINE_MS} ms after every fault healed (last answers: ${waiting.map((postback) => postback.answers.slice(-3).join('/')).join(', ')})`,
        );
        return;
      }
      for (const postback of waiting) await send(postback, live());
      await sleep(100);
    }
    await Promise.all([...running].filter((entry) => !entry.receiver.dead).map((entry) => entry.settled));
    const admin = receivers[0]?.router.inbox ?? null;
    if (admin !== null) {
      for (;;) {
        const stats = await admin.stats();
        if (stats.dead > 0) {
          retriesOfDead += 1;
          await admin.retry({ status: 'dead' });
        } else if (stats.pending + stats.retrying === 0) break;
        if (Date.now() > deadline) {
          violations.push(`I6 liveness: the inbox still holds ${JSON.stringify(stats)} after every fault healed`);
          return;
        }
        await sleep(50);
      }
    }
    for (let attempt = 0; ; attempt += 1) {
      try {
        const report = await reconcile(receivers[0]);
        if ((report as { failed: number }).failed === 0) break;
      } catch (error) {
        if (attempt >= 5) {
          violations.push(`I6 liveness: reconciliation still fails after every fault healed: ${String(error)}`);
          return;
        }
      }
      if (attempt >= 5) {
        violations.push('I6 liveness: reconciliation could not deliver every change after every fault healed');
        return;
      }
      await sleep(200);
    }
  }

  async function check(): Promise<void> {
    const entries = await backend.ledger.entries();
    figures.ledgerEntries = entries.length;
    const truth = impact.truth();
    for (const [actionId, state] of truth) {
      const own = entries.filter((entry) => entry.actionId === actionId);
      const balance = own.reduce((sum, entry) => sum + entry.cents, 0);
      const expected = worthCents(state.status, state.payout);
      if (balance !== expected) {
        violations.push(
          `I1/I2 exact ledger: action ${actionId} is worth ${expected} at impact.com, the ledger credited ${balance} (${own.map((entry) => `${entry.from} → ${entry.to} ${entry.cents}`).join('; ')})`,
        );
      }
      let at = 'new';
      for (const entry of own) {
        if (entry.from !== at) {
          violations.push(
            `I1 nothing twice: action ${actionId}'s ledger applied ${entry.from} → ${entry.to} (${entry.trigger}) while it stood at ${at}`,
          );
        }
        if (FINAL.has(entry.from.split(' ')[0] ?? '') && entry.to.startsWith('PENDING')) {
          violations.push(`I3 no final state undone: action ${actionId}'s ledger moved ${entry.from} → ${entry.to}`);
        }
        at = entry.to;
      }
    }
    const subjects = [...truth.keys()].map((id) => `action:${id}`);
    const records = await backend.journal(subjects);
    subjects.forEach((subject, index) => {
      const state = truth.get(subject.slice('action:'.length));
      const record = records[index];
      if (record?.['status'] !== state?.status || Number(record?.['payout']) !== Number(state?.payout)) {
        violations.push(
          `journal: ${subject} reads ${record?.['status'] ?? 'nothing'} ${record?.['payout'] ?? ''}, impact.com has ${state?.status} ${state?.payout}`,
        );
      }
    });
    await watchJournal();
    const acknowledged = impact.postbacks.filter((postback) => postback.acknowledged);
    const keys = acknowledged.map((postback) => dedupeKeyOf(postback.route, postback.fields));
    const handled = await backend.handled(keys);
    handled.forEach((isHandled, index) => {
      if (!isHandled) {
        violations.push(
          `I2 nothing lost: postback ${acknowledged[index]?.id} was answered 2xx, and its key is not recorded`,
        );
      }
    });
    if (inbox) {
      // Every attempt counts as it begins, one the process died in too.
      const bound = MAX_ATTEMPTS * (1 + retriesOfDead);
      for (const [key, count] of calls) {
        if (count > bound) {
          violations.push(`I4 bounded: the listener ran ${count} times for ${key} (attempts allowed: ${bound})`);
        }
      }
      for (const [key, count] of deadEvents) {
        if (count > 1 + retriesOfDead) violations.push(`I4 bounded: dead emitted ${count} times for ${key}`);
      }
    }
  }

  try {
    for (let index = 0; index < backend.processes; index += 1) await start(index, 0);
    for (const step of plan) {
      trace(describeStep(step));
      await play(step);
      await watchJournal();
    }
    trace('quiet');
    await quiet();
    await sleep(100);
    trace('check');
    await check();
  } catch (error) {
    violations.push(
      `the run itself failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
    );
  } finally {
    trace('close');
    for (const receiver of [...receivers, ...retired]) {
      if (!receiver.dead) await receiver.server.close();
      await receiver.router.close({ timeoutMs: receiver.dead ? 10 : 1000 });
      await receiver.processStore.dispose();
    }
    await api.stop();
    await backend.dispose();
    // A request still being answered as its receiver closed (a dead one's store never answers)
    // gets its 503 within the listener timeout, and its timer ends then; one still alive after
    // that is one close() left running.
    await sleep(LISTENER_TIMEOUT_MS + 20);
    process.removeListener('uncaughtException', onEscape);
    process.removeListener('unhandledRejection', onEscape);
  }
  for (const error of escaped) {
    violations.push(
      `I4/I6 nothing escapes: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
    );
  }
  timers.stop();
  const timersLeft = timers.alive();
  if (timersLeft.length > 0) {
    violations.push(
      `I4 close() ends its timers: still alive after every receiver closed, set ${timersLeft.join('; ')}`,
    );
  }
  return {
    settings,
    plan,
    violations: [...new Set(violations)],
    figures: { ...figures, durationMs: Date.now() - started },
  };
}

/** With EXPLORE_TRACE=1, each step as it is played. */
function trace(line: string): void {
  if (process.env['EXPLORE_TRACE'] === '1') console.log(`    ${new Date().toISOString().slice(11, 23)} ${line}`);
}

/** A run's plan as lines of a reproduction. */
export function describePlan(plan: readonly Step[]): string[] {
  return plan.map((step, index) => `${String(index + 1).padStart(3)}. ${describeStep(step)}`);
}
