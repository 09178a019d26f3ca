import type {
  Attributes,
  Context,
  Counter,
  Histogram,
  MeterProvider,
  Span,
  SpanContext,
  Tracer,
} from '@opentelemetry/api';
import { runAround } from '../delivery/run-around';
import { PostbackError, type PostbackErrorCode } from '../errors';
import type { PostbackEvent, PostbackFormat, PostbackRoute } from '../events';
import type { HistoryOutcome } from '../history/history-entry';
import type { ReconcileReport } from '../reconcile/reconcile';
import type { OtelApi } from './otel-api';

const SCOPE = 'impact-postbacks';
/** Arrivals remembered for their inbox delivery's link; past this, the oldest are forgotten. */
const MAX_ARRIVALS = 10_000;
/** Seconds: from a GET answered at once to a listener near its timeout. */
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

interface Instruments {
  readonly provider: MeterProvider;
  readonly answered: Counter;
  readonly duration: Histogram;
  /** The API's no-ops: no meter provider is registered. */
  readonly noop: boolean;
}

/**
 * A span, and the context in which the work it measures runs (so the host's spans nest under
 * it); null when the span records nothing (no SDK registered, or not sampled): the work then
 * runs in the host's context as it is, which costs nothing.
 */
export interface Traced {
  readonly span: Span;
  readonly context: Context | null;
}

/** How a postback or a delivery ended, for its span and the metrics. */
export interface TracedOutcome {
  readonly outcome: HistoryOutcome;
  /** Null for a delivery that answers nobody (the inbox's, reconciliation's). */
  readonly status: number | null;
  readonly code: PostbackErrorCode | null;
  readonly format: PostbackFormat | null;
  readonly event: PostbackEvent | null;
  readonly durationMs: number;
}

/**
 * Spans and metrics through the host's OpenTelemetry API: a span per postback
 * (`impact.postback`), per inbox delivery (`impact.inbox.delivery`, linked to its arrival's) and
 * per reconciliation (`impact.reconcile`); a counter of answered postbacks and a histogram of
 * their durations, by route and outcome.
 */
export class Telemetry {
  readonly #api: OtelApi;
  readonly #tracer: Tracer;
  #instruments: Instruments | null = null;
  /** What the API hands out when no meter provider is registered, to tell its instruments apart. */
  readonly #noopHistogram: Histogram;
  /** The arrival's span of each postback stored in the inbox, by key, until its delivery begins. */
  readonly #arrivals = new Map<string, SpanContext>();
  readonly #reportError: (error: PostbackError) => void;

  constructor(api: OtelApi, reportError: (error: PostbackError) => void) {
    this.#api = api;
    this.#reportError = reportError;
    this.#noopHistogram = api.createNoopMeter().createHistogram(SCOPE);
    // The API's tracer follows a provider registered later; its meters do not (see #instrumentsNow).
    this.#tracer = api.trace.getTracer(SCOPE);
  }

  /**
   * The instruments of the meter provider registered now. The metrics API hands out no proxy:
   * a meter taken before the host registers its SDK stays a no-op, so the provider is looked up
   * at each use (a global read) and the instruments made again when it changed.
   */
  #instrumentsNow(): Instruments {
    const provider = this.#api.metrics.getMeterProvider();
    if (this.#instruments?.provider === provider) return this.#instruments;
    const meter = provider.getMeter(SCOPE);
    const duration = meter.createHistogram('impact.postback.duration', {
      description: 'Time from a postback’s arrival to its answer',
      unit: 's',
      // The SDK's default boundaries (0, 5, 10 ... 10,000) suit milliseconds: in seconds every
      // postback would fall in the first bucket.
      advice: { explicitBucketBoundaries: DURATION_BUCKETS },
    });
    this.#instruments = {
      provider,
      answered: meter.createCounter('impact.postbacks', { description: 'Postbacks answered, by route and outcome' }),
      duration,
      noop: duration.constructor === this.#noopHistogram.constructor,
    };
    return this.#instruments;
  }

  /** The span of a postback, a child of the host's request span when there is one. */
  startPostback(route: PostbackRoute): Traced | null {
    return this.#start('impact.postback', { 'impact.route': route }, this.#api.context.active(), []);
  }

  /**
   * Whether anything would record this postback's end: its span, or a registered meter
   * provider. Without an SDK nothing does, and the postback is not even timed.
   */
  measures(traced: Traced | null): boolean {
    try {
      return traced?.span.isRecording() === true || !this.#instrumentsNow().noop;
    } catch (error) {
      this.#failed(error);
      return false;
    }
  }

  /** Ends the span of a postback nothing measures (see measures()). */
  endUnmeasured(traced: Traced | null): void {
    if (traced === null) return;
    this.#guard(() => {
      traced.span.end();
    });
  }

  endPostback(traced: Traced | null, route: PostbackRoute, ended: TracedOutcome): void {
    this.#guard(() => {
      if (traced !== null) this.#end(traced.span, ended);
      const attributes = { 'impact.route': route, 'impact.outcome': ended.outcome };
      const { answered, duration } = this.#instrumentsNow();
      answered.add(1, attributes);
      duration.record(ended.durationMs / 1000, attributes);
    });
  }

  /** Kept for the link from its inbox delivery, which a worker of this process begins later. */
  rememberArrival(key: string, traced: Traced | null): void {
    this.#guard(() => {
      // Nothing to link to when nobody records: no SDK, or not sampled.
      if (traced === null || !traced.span.isRecording()) return;
      // A copy of a postback whose row waits keeps the first arrival's link.
      if (this.#arrivals.has(key)) return;
      this.#arrivals.set(key, traced.span.spanContext());
      if (this.#arrivals.size > MAX_ARRIVALS) {
        const oldest = this.#arrivals.keys().next();
        if (oldest.done !== true) this.#arrivals.delete(oldest.value);
      }
    });
  }

  /**
   * The span of an inbox delivery: a trace of its own (the worker serves no request), linked to
   * its arrival's span when this process received it.
   */
  startInboxDelivery(event: PostbackEvent): Traced | null {
    const arrival = this.#arrivals.get(event.meta.key);
    this.#arrivals.delete(event.meta.key);
    return this.#start(
      'impact.inbox.delivery',
      { 'impact.route': event.meta.route, 'impact.trigger': 'inbox' },
      this.#api.ROOT_CONTEXT,
      arrival === undefined ? [] : [arrival],
    );
  }

  /**
   * Ends a delivery's span: with its outcome; `given-back` for one the router gave back as it
   * closed (made again later); `threw` for one that threw (reported and tried again by the worker).
   */
  endDelivery(traced: Traced | null, ended: TracedOutcome | 'given-back' | 'threw'): void {
    if (traced === null) return;
    this.#guard(() => {
      if (ended === 'threw') {
        traced.span.setStatus({ code: this.#api.SpanStatusCode.ERROR, message: 'the delivery threw' });
        traced.span.end();
      } else if (ended === 'given-back') {
        traced.span.setAttribute('impact.outcome', 'given-back');
        traced.span.end();
      } else {
        this.#end(traced.span, ended);
      }
    });
  }

  startReconcile(): Traced | null {
    return this.#start('impact.reconcile', {}, this.#api.context.active(), []);
  }

  endReconcile(traced: Traced | null, report: ReconcileReport | null, error: unknown): void {
    if (traced === null) return;
    this.#guard(() => {
      this.#endReconcile(traced.span, report, error);
    });
  }

  #endReconcile(span: Span, report: ReconcileReport | null, error: unknown): void {
    if (report !== null) {
      span.setAttributes({
        'impact.reconcile.checked': report.checked,
        'impact.reconcile.missing': report.missing,
        'impact.reconcile.changed': report.changed,
        'impact.reconcile.overtaken': report.overtaken,
        'impact.reconcile.unchanged': report.unchanged,
        'impact.reconcile.stale': report.stale,
        'impact.reconcile.delivered': report.delivered,
        'impact.reconcile.failed': report.failed,
        'impact.reconcile.pages': report.pages,
        'impact.reconcile.requests': report.requests,
      });
    } else {
      span.recordException(error instanceof Error ? error : String(error));
      span.setStatus({ code: this.#api.SpanStatusCode.ERROR, message: messageOf(error) });
    }
    span.end();
  }

  /**
   * Runs `work` inside the span's context: the host's spans made in it, now or after an await,
   * nest under it. Without a span, it just runs.
   */
  within<R>(traced: Traced | null, work: () => R): R {
    const spanContext = traced?.context;
    if (spanContext == null) return work();
    return this.#runIn(spanContext, work);
  }

  /**
   * Runs `work` in the root context: the inbox worker started in it serves no request, and
   * whatever span was active where the router was created is not its parent.
   */
  outsideAnySpan<R>(work: () => R): R {
    return this.#runIn(this.#api.ROOT_CONTEXT, work);
  }

  #runIn<R>(runContext: Context, work: () => R): R {
    // A context manager that throws must not change what the work does, nor fail it.
    return runAround(
      (run) => this.#api.context.with(runContext, run),
      work,
      (error) => {
        this.#failed(error);
      },
    );
  }

  /** A span, or null when the host's tracer failed to make one: the postback is handled all the same. */
  #start(name: string, attributes: Attributes, parent: Context, links: readonly SpanContext[]): Traced | null {
    try {
      const span = this.#tracer.startSpan(
        name,
        {
          kind: this.#api.SpanKind.INTERNAL,
          attributes,
          ...(links.length === 0 ? {} : { links: links.map((context) => ({ context })) }),
        },
        parent,
      );
      return { span, context: this.#contextOf(span, parent) };
    } catch (error) {
      this.#failed(error);
      return null;
    }
  }

  /**
   * The context the work runs in: the span's. Without an SDK the API's span records nothing and
   * only carries the parent's span context (or none): the parent's context serves as it is, and
   * no context is made. A span the host's sampler dropped is set all the same, so that spans
   * made under it follow its decision.
   */
  #contextOf(span: Span, parent: Context): Context | null {
    if (span.isRecording()) return this.#api.trace.setSpan(parent, span);
    const carried = span.spanContext();
    if (!this.#api.trace.isSpanContextValid(carried) || carried === this.#api.trace.getSpanContext(parent)) return null;
    return this.#api.trace.setSpan(parent, span);
  }

  /**
   * Telemetry never decides a postback's answer: a host's SDK that throws is reported as an
   * `error` event, and the postback is handled all the same.
   */
  #guard(work: () => void): void {
    try {
      work();
    } catch (error) {
      this.#failed(error);
    }
  }

  #failed(cause: unknown): void {
    this.#reportError(new PostbackError('internal', 'OpenTelemetry failed to record a postback', { cause }));
  }

  #end(span: Span, ended: TracedOutcome): void {
    // Without an SDK (or unsampled) nothing is kept: the attributes are not even built.
    if (span.isRecording()) {
      const { event } = ended;
      span.setAttributes({
        'impact.outcome': ended.outcome,
        ...(ended.format === null ? {} : { 'impact.format': ended.format }),
        ...(ended.status === null ? {} : { 'http.response.status_code': ended.status }),
        ...(ended.code === null ? {} : { 'impact.error_code': ended.code }),
        ...(event === null ? {} : { 'impact.key': event.meta.key }),
        ...(event?.kind === 'action' ? { 'impact.action_id': event.actionId } : {}),
      });
      if (ended.outcome === 'failed') {
        span.setStatus({ code: this.#api.SpanStatusCode.ERROR, message: ended.code ?? 'failed' });
      }
    }
    span.end();
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
