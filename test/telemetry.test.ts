import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { context, metrics, trace, type Context, type ContextManager, type Span as ApiSpan } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  AggregationTemporality,
  DataPointType,
  MeterProvider,
  MetricReader,
  type DataPoint,
  type Histogram,
} from '@opentelemetry/sdk-metrics';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  type ReadableSpan,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { expect } from 'chai';
import request from 'supertest';
import { PostgresStore, SqliteStore, type PostbackRouterOptions } from '../lib';
import { createApp, type TestApp } from './helpers/create-app';
import { apiAction, FakeActionsApi } from './helpers/fake-actions-api';
import { startServer } from './helpers/server';
import { createTestSchema, DATABASE_URL, requirePostgres } from './helpers/services';

/** Reads the meter provider's metrics when asked, cumulative. */
class TestMetricReader extends MetricReader {
  constructor() {
    super({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE });
  }
  protected onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
  protected onShutdown(): Promise<void> {
    return Promise.resolve();
  }
}

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '..');

const ACTION = '/impact/actions?ActionId=4242.1.1&Status=PENDING&Payout=5.00&SubId1=member-7';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function until(check: () => boolean, ms: number): Promise<void> {
  for (const deadline = Date.now() + ms; !check();) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await sleep(10);
  }
}

describe('OpenTelemetry', function () {
  this.timeout(30_000);
  const exporter = new InMemorySpanExporter();
  /** Set by a test to make the host's SDK fail as a span starts. */
  let failOnStart = false;
  const failing: SpanProcessor = {
    onStart() {
      if (failOnStart) throw new Error('the SDK broke');
    },
    onEnd: () => undefined,
    forceFlush: () => Promise.resolve(),
    shutdown: () => Promise.resolve(),
  };
  const provider = new BasicTracerProvider({ spanProcessors: [failing, new SimpleSpanProcessor(exporter)] });
  const contextManager = new AsyncLocalStorageContextManager();
  let reader: TestMetricReader;
  let meterProvider: MeterProvider;
  const host = trace.getTracer('host');
  let app: TestApp<unknown> | undefined;
  let dir: string;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'impact-telemetry-'));
    context.setGlobalContextManager(contextManager.enable());
    trace.setGlobalTracerProvider(provider);
  });
  after(async () => {
    trace.disable();
    context.disable();
    await rm(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    exporter.reset();
    failOnStart = false;
    // A provider per test: its counts start at zero.
    reader = new TestMetricReader();
    meterProvider = new MeterProvider({ readers: [reader] });
    metrics.disable();
    metrics.setGlobalMeterProvider(meterProvider);
  });
  afterEach(async () => {
    await app?.postbacks.close();
    app = undefined;
    metrics.disable();
    await meterProvider.shutdown();
  });

  function spans(name: string): ReadableSpan[] {
    return exporter.getFinishedSpans().filter((span) => span.name === name);
  }

  function only(name: string): ReadableSpan {
    const found = spans(name);
    expect(found.map((span) => span.name)).to.deep.equal([name]);
    return found[0] as ReadableSpan;
  }

  function parentOf(span: ReadableSpan): string | undefined {
    return span.parentSpanContext?.spanId;
  }

  function open(options: Partial<PostbackRouterOptions<unknown>> = {}): TestApp<unknown> {
    app = createApp<unknown>(options);
    return app;
  }

  /** A listener that makes a span of the host's, as a database client's instrumentation would. */
  function hostSpanInListener(testApp: TestApp<unknown>, afterAwait: boolean): void {
    testApp.postbacks.on('action', async () => {
      if (afterAwait) await sleep(5);
      host.startActiveSpan('host.credit', (span: ApiSpan) => {
        span.end();
      });
    });
  }

  it('makes one impact.postback span per postback, with route, format, outcome, status, action id and key', async () => {
    const testApp = open();
    expect((await request(testApp.app).get(ACTION)).status).to.equal(200);
    const span = only('impact.postback');
    const event = testApp.events.action[0];
    expect(span.attributes).to.deep.equal({
      'impact.route': 'actions',
      'impact.format': 'query',
      'impact.outcome': 'delivered',
      'http.response.status_code': 200,
      'impact.key': event?.meta.key,
      'impact.action_id': '4242.1.1',
    });
    expect(span.status.code).to.equal(0);
    expect(span.ended).to.equal(true);
  });

  it('gives a duplicate, a refused postback and a failed one their outcome, status and error code', async () => {
    const testApp = open();
    let fail = false;
    testApp.postbacks.on('action', () => {
      if (fail) throw new Error('ledger down');
    });
    testApp.postbacks.on('error', () => undefined);
    await request(testApp.app).get(ACTION);
    await request(testApp.app).get(ACTION);
    await request(testApp.app).get('/impact/actions?Status=PENDING');
    fail = true;
    expect((await request(testApp.app).get(ACTION.replace('4242.1.1', '4242.1.2'))).status).to.equal(500);
    const seen = spans('impact.postback').map((span) => [
      span.attributes['impact.outcome'],
      span.attributes['http.response.status_code'],
      span.attributes['impact.error_code'],
      span.status.code,
    ]);
    expect(seen).to.deep.equal([
      ['delivered', 200, undefined, 0],
      ['duplicate', 200, undefined, 0],
      ['rejected', 400, 'field.missing', 0],
      ['failed', 500, 'listener.failed', 2],
    ]);
  });

  it('records a sender outside the allow-list as rejected ip.forbidden, its fields unread', async () => {
    const testApp = open({ allowedIps: ['192.0.2.0/24'] });
    expect((await request(testApp.app).get(ACTION)).status).to.equal(403);
    const span = only('impact.postback');
    expect(span.attributes).to.deep.equal({
      'impact.route': 'actions',
      'impact.outcome': 'rejected',
      'http.response.status_code': 403,
      'impact.error_code': 'ip.forbidden',
    });
  });

  it("nests under the host's request span, and a listener's spans nest under it, before and after an await", async () => {
    for (const afterAwait of [false, true]) {
      exporter.reset();
      const testApp = open();
      hostSpanInListener(testApp, afterAwait);
      const handle = testApp.postbacks.nodeHandler({ basePath: '/impact' });
      // The host's own request span, as its HTTP instrumentation would make it.
      const server = await startServer((req: http.IncomingMessage, res: http.ServerResponse) => {
        host.startActiveSpan('host.request', (span: ApiSpan) => {
          res.on('finish', () => span.end());
          handle(req, res);
        });
      });
      try {
        expect((await fetch(`${server.base}${ACTION}`)).status).to.equal(200);
      } finally {
        await server.close();
        await testApp.postbacks.close();
      }
      await until(() => spans('host.request').length === 1, 2000);
      const postback = only('impact.postback');
      expect(parentOf(postback)).to.equal(only('host.request').spanContext().spanId);
      expect(parentOf(only('host.credit')), `after an await: ${afterAwait}`).to.equal(postback.spanContext().spanId);
      expect(only('host.credit').spanContext().traceId).to.equal(postback.spanContext().traceId);
    }
  });

  it('keeps a POST body read and an asynchronous store inside the span (PostgresStore)', async function () {
    await requirePostgres(this);
    const schema = await createTestSchema();
    const testApp = open({ store: new PostgresStore({ connectionString: DATABASE_URL, schema: schema.name }) });
    hostSpanInListener(testApp, true);
    try {
      const res = await request(testApp.app)
        .post('/impact/actions')
        .send({ ActionId: '4242.2.1', Status: 'PENDING', Payout: '27.750' });
      expect(res.status).to.equal(200);
      const postback = only('impact.postback');
      expect(postback.attributes['impact.format']).to.equal('json');
      expect(parentOf(only('host.credit'))).to.equal(postback.spanContext().spanId);
    } finally {
      await testApp.postbacks.close();
      await schema.drop();
    }
  });

  it("gives an inbox delivery its own trace, linked to the arrival's span, with the listener's spans under it", async () => {
    const testApp = open({ store: new SqliteStore({ path: path.join(dir, 'inbox.db') }), delivery: 'inbox' });
    hostSpanInListener(testApp, true);
    expect((await request(testApp.app).get(ACTION)).status).to.equal(200);
    await until(() => spans('impact.inbox.delivery').length === 1, 5000);
    const arrival = only('impact.postback');
    const delivery = only('impact.inbox.delivery');
    expect(arrival.attributes['impact.outcome']).to.equal('stored');
    expect(delivery.attributes).to.include({
      'impact.route': 'actions',
      'impact.trigger': 'inbox',
      'impact.outcome': 'delivered',
      'impact.action_id': '4242.1.1',
      'impact.key': arrival.attributes['impact.key'],
    });
    expect(delivery.attributes).not.to.have.property('http.response.status_code');
    expect(parentOf(delivery)).to.equal(undefined);
    expect(delivery.links.map((link) => link.context.spanId)).to.deep.equal([arrival.spanContext().spanId]);
    expect(delivery.spanContext().traceId).not.to.equal(arrival.spanContext().traceId);
    await until(() => spans('host.credit').length === 1, 2000);
    expect(parentOf(only('host.credit'))).to.equal(delivery.spanContext().spanId);
  });

  it("gives a reconciliation run a span with its report, its deliveries' listener spans under it", async () => {
    const api = new FakeActionsApi('IRtest', 'sEcReT-auth-token-0123456789');
    await api.start();
    try {
      const testApp = open({ store: new SqliteStore({ path: path.join(dir, 'reconcile.db') }) });
      hostSpanInListener(testApp, false);
      api.put(apiAction('5151.1.1', 'APPROVED', '7.50'));
      api.put(apiAction('5151.1.2', 'PENDING', '1.00'));
      const report = await testApp.postbacks.reconcile({
        accountSid: 'IRtest',
        authToken: 'sEcReT-auth-token-0123456789',
        since: new Date(Date.now() - 86_400_000),
        baseUrl: api.baseUrl,
      });
      expect(report.delivered).to.equal(2);
      const run = only('impact.reconcile');
      expect(run.attributes).to.deep.equal({
        'impact.reconcile.checked': 2,
        'impact.reconcile.missing': 2,
        'impact.reconcile.changed': 0,
        'impact.reconcile.overtaken': 0,
        'impact.reconcile.unchanged': 0,
        'impact.reconcile.stale': 0,
        'impact.reconcile.delivered': 2,
        'impact.reconcile.failed': 0,
        'impact.reconcile.pages': 1,
        'impact.reconcile.requests': 1,
      });
      const credits = spans('host.credit');
      expect(credits).to.have.length(2);
      for (const credit of credits) expect(parentOf(credit)).to.equal(run.spanContext().spanId);
    } finally {
      await api.stop();
    }
  });

  it('counts answered postbacks by route and outcome, and records their durations in seconds', async () => {
    const testApp = open();
    await request(testApp.app).get(ACTION);
    await request(testApp.app).get(ACTION);
    await request(testApp.app).get('/impact/inquiries?Status=OPEN');
    const { resourceMetrics, errors } = await reader.collect();
    expect(errors).to.deep.equal([]);
    const metricsByName = new Map(
      resourceMetrics.scopeMetrics
        .filter((scope) => scope.scope.name === 'impact-postbacks')
        .flatMap((scope) => scope.metrics)
        .map((metric) => [metric.descriptor.name, metric]),
    );
    const counter = metricsByName.get('impact.postbacks');
    expect(
      counter?.dataPoints.map((point) => [
        point.attributes['impact.route'],
        point.attributes['impact.outcome'],
        point.value,
      ]),
    ).to.have.deep.members([
      ['actions', 'delivered', 1],
      ['actions', 'duplicate', 1],
      ['inquiries', 'rejected', 1],
    ]);
    const duration = metricsByName.get('impact.postback.duration');
    expect(duration?.descriptor.unit).to.equal('s');
    expect(duration?.dataPointType).to.equal(DataPointType.HISTOGRAM);
    const points = (duration?.dataPoints ?? []) as DataPoint<Histogram>[];
    expect(points.reduce((sum, point) => sum + point.value.count, 0)).to.equal(3);
    for (const point of points) {
      expect(point.value.sum).to.be.within(0, 5);
      // Seconds call for boundaries below 1, not the SDK's default ones (0, 5, 10 ...).
      expect(point.value.buckets.boundaries).to.deep.equal([
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
      ]);
    }
  });

  it('follows a meter provider registered after the router was created and had answered', async () => {
    metrics.disable();
    const testApp = open();
    // Answered while the API's no-op provider is the one registered.
    await request(testApp.app).get(ACTION);
    metrics.setGlobalMeterProvider(meterProvider);
    await request(testApp.app).get(ACTION);
    const { resourceMetrics } = await reader.collect();
    const counter = resourceMetrics.scopeMetrics
      .flatMap((scope) => scope.metrics)
      .find((metric) => metric.descriptor.name === 'impact.postbacks');
    expect(counter?.dataPoints.map((point) => [point.attributes['impact.outcome'], point.value])).to.deep.equal([
      ['duplicate', 1],
    ]);
  });

  it('makes no span with option telemetry: false', async () => {
    const testApp = open({ telemetry: false });
    expect((await request(testApp.app).get(ACTION)).status).to.equal(200);
    expect(exporter.getFinishedSpans()).to.deep.equal([]);
    const { resourceMetrics } = await reader.collect();
    expect(resourceMetrics.scopeMetrics).to.deep.equal([]);
  });

  it("answers and delivers as ever when the host's SDK throws, and reports it as an error event", async () => {
    const testApp = open();
    failOnStart = true;
    expect((await request(testApp.app).get(ACTION)).status).to.equal(200);
    expect(testApp.events.action).to.have.length(1);
    expect(testApp.events.error.map((error) => [error.code, error.message])).to.deep.equal([
      ['internal', 'OpenTelemetry failed to record a postback'],
    ]);
    expect(exporter.getFinishedSpans()).to.deep.equal([]);
  });

  it('refuses a telemetry option that is not a boolean, naming it', () => {
    expect(() => createApp({ telemetry: 'yes' as unknown as boolean })).to.throw(
      TypeError,
      'option telemetry must be true or false',
    );
  });

  it("reports through the Node SDK as the README's recipe registers it", async () => {
    const readme = await readFile(path.join(ROOT, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('\n## Traces and metrics\n'));
    const recipe = /```ts\n([\s\S]*?)```/.exec(section)?.[1];
    expect(recipe).to.include('new NodeSDK()');
    await mkdir(path.join(ROOT, '.tmp'), { recursive: true });
    // Beside the package (tsx and the SDK resolve from it), a folder of this run's own.
    const scratch = await mkdtemp(path.join(ROOT, '.tmp', 'telemetry-'));
    await writeFile(path.join(scratch, 'telemetry.ts'), recipe ?? '');
    // The recipe first, as `node --import ./telemetry.js` loads it; then an app on node:http.
    await writeFile(
      path.join(scratch, 'app.ts'),
      `import './telemetry';
import http from 'node:http';
import { createPostbackRouter } from '../../lib';

const postbacks = createPostbackRouter({ allowedIps: ['127.0.0.1'] });
postbacks.on('action', () => undefined);
const server = http.createServer(postbacks.nodeHandler({ basePath: '/impact' }));
server.listen(0, '127.0.0.1', async () => {
  const { port } = server.address() as { port: number };
  const answer = await fetch(\`http://127.0.0.1:\${port}${ACTION}\`);
  console.log('status', answer.status);
  server.close();
  await postbacks.close();
  // As the recipe's host is stopped: the SDK exports what it holds as it shuts down.
  process.kill(process.pid, 'SIGTERM');
});
`,
    );
    const { stdout } = await run(process.execPath, ['--import', 'tsx', path.join(scratch, 'app.ts')], {
      cwd: ROOT,
      env: {
        ...process.env,
        OTEL_TRACES_EXPORTER: 'console',
        OTEL_METRICS_EXPORTER: 'none',
        OTEL_LOGS_EXPORTER: 'none',
      },
      timeout: 20_000,
    }).finally(() => rm(scratch, { recursive: true, force: true }));
    expect(stdout).to.include('status 200');
    expect(stdout).to.include("name: 'impact.postback'");
    expect(stdout).to.match(/'impact.outcome': 'delivered'/);
    expect(stdout).to.match(/'impact.action_id': '4242.1.1'/);
  });

  describe("when the host's context manager throws", () => {
    /** Where it throws, around the router's own spans only: before it runs the work, or after. */
    let breaks: 'before' | 'after' | null = null;
    const inner = new AsyncLocalStorageContextManager();
    const isRouters = (ctx: Context): boolean =>
      ((trace.getSpan(ctx) as unknown as { name?: string } | undefined)?.name ?? '').startsWith('impact.');
    const broken: ContextManager = {
      active: () => inner.active(),
      with(ctx, work, thisArg, ...args) {
        if (breaks === 'before' && isRouters(ctx)) throw new Error('the context manager broke');
        const result = inner.with(ctx, work, thisArg, ...args);
        if (breaks === 'after' && isRouters(ctx)) throw new Error('the context manager broke');
        return result;
      },
      bind: (ctx, target) => inner.bind(ctx, target),
      enable() {
        inner.enable();
        return broken;
      },
      disable() {
        inner.disable();
        return broken;
      },
    };
    before(() => {
      context.disable();
      context.setGlobalContextManager(broken.enable());
    });
    after(() => {
      breaks = null;
      context.disable();
      context.setGlobalContextManager(contextManager.enable());
    });

    for (const where of ['before', 'after'] as const) {
      it(`delivers an inbox row once, and not dead, when it throws ${where} the delivery runs`, async () => {
        const testApp = open({
          store: new SqliteStore({ path: path.join(dir, `broken-${where}.db`) }),
          delivery: 'inbox',
          maxAttempts: 2,
          backoff: { baseMs: 10, maxMs: 20 },
        });
        const dead: unknown[] = [];
        testApp.postbacks.on('dead', (...args: unknown[]) => void dead.push(args));
        breaks = where;
        expect((await request(testApp.app).get(ACTION)).status).to.equal(200);
        const inbox = testApp.postbacks.inbox;
        if (inbox === null) throw new Error('no inbox');
        await until(() => testApp.events.action.length > 0, 5000);
        // Time for a wrongly failed attempt to be tried again (backoff 10-20 ms).
        await sleep(300);
        breaks = null;
        expect(testApp.events.action).to.have.length(1);
        expect(dead).to.deep.equal([]);
        expect((await inbox.list()).map((row) => [row.status, row.attempts])).to.deep.equal([['delivered', 1]]);
        expect(testApp.events.error.map((error) => error.message)).to.include(
          'OpenTelemetry failed to record a postback',
        );
      });

      it(`answers a postback 200 and delivers it once when it throws ${where} the receiver runs`, async () => {
        const testApp = open();
        const handle = testApp.postbacks.nodeHandler({ basePath: '/impact' });
        const server = await startServer((req, res) => {
          handle(req, res);
        });
        const uncaught: unknown[] = [];
        const onUncaught = (error: unknown): void => void uncaught.push(error);
        process.prependListener('uncaughtException', onUncaught);
        try {
          breaks = where;
          expect((await fetch(`${server.base}${ACTION}`)).status).to.equal(200);
        } finally {
          breaks = null;
          process.removeListener('uncaughtException', onUncaught);
          await server.close();
        }
        expect(uncaught).to.deep.equal([]);
        expect(testApp.events.action).to.have.length(1);
        expect(testApp.events.error.map((error) => error.message)).to.include(
          'OpenTelemetry failed to record a postback',
        );
      });
    }
  });
});
