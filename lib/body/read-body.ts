import { PostbackError, type PostbackErrorCode } from '../errors';
import { isEmptyBody, planBody, sniffFormat, type BodyFormat } from './content-type';
import {
  addField,
  duplicateField,
  assertFieldCount,
  createRecord,
  MAX_NESTING_DEPTH,
  type FieldRecord,
  type FieldValue,
} from './field-record';
import { parseJsonBody } from './parse-json';
import { parseUrlEncoded } from './parse-urlencoded';
import { parseXmlBody } from './parse-xml';

export interface ReceivedBody {
  readonly format: BodyFormat;
  readonly record: FieldRecord;
  /** The body as text, when it came as text or bytes (history keeps it instead of the record); null when a host parser made an object of it. */
  readonly text: string | null;
}

export interface BodyLimits {
  /** Largest body in bytes, after inflation. */
  readonly limit: number;
  readonly maxFields: number;
}

/**
 * Turns a body into fields, whatever read it: bytes an adapter read (a Node stream, a Fetch
 * body), or what a host's own parser made of it. Built once per receiver.
 */
export interface BodyReader extends BodyLimits {
  /** The body's bytes, as sent (inflated), into fields by the Content-Type; null for an empty body. */
  fromBytes(bytes: Uint8Array, contentType: string | undefined): ReceivedBody | null;
  /** What a host parser that ran first left (express.json() and its kin): an object, text or bytes. */
  fromParsed(body: unknown, contentType: string | undefined): ReceivedBody | null;
}

export function createBodyReader(limits: BodyLimits): BodyReader {
  const decoder = new TextDecoder('utf-8', { fatal: true });

  function fromText(text: string, contentType: string | undefined): ReceivedBody | null {
    const plan = planBody(contentType);
    if (isEmptyBody(text)) return null;
    const format = plan === 'sniff' ? sniffFormat(text) : plan;
    return { format, record: parseBodyAs(format, text, limits.maxFields), text };
  }

  function decode(bytes: Uint8Array): string {
    try {
      return decoder.decode(bytes);
    } catch {
      throw new PostbackError('body.invalid', 'the body is not valid UTF-8');
    }
  }

  function fromBytes(bytes: Uint8Array, contentType: string | undefined): ReceivedBody | null {
    return fromText(decode(bytes), contentType);
  }

  function fromParsed(body: unknown, contentType: string | undefined): ReceivedBody | null {
    if (body === undefined || body === null) return null;
    if (body instanceof Uint8Array) return fromBytes(body, contentType);
    if (typeof body === 'string') return fromText(body, contentType);
    if (typeof body !== 'object' || Array.isArray(body)) {
      throw new PostbackError('body.invalid', 'the body must be an object of fields');
    }
    const entries = Object.entries(body as Record<string, unknown>);
    // Express 4's parsers leave `{}` on requests they did not parse.
    if (entries.length === 0) return null;
    const format: BodyFormat = planBody(contentType) === 'form' ? 'form' : 'json';
    const record = createRecord();
    let count = 0;
    for (const [key, value] of entries) {
      count += 1;
      assertFieldCount(count, limits.maxFields);
      // urlencoded parsers turn a repeated key into an array: the same duplicate as ours.
      if (format === 'form' && Array.isArray(value)) {
        throw duplicateField(key);
      }
      addField(record, key, toFieldValue(value, 1));
    }
    return { format, record, text: null };
  }

  return { limit: limits.limit, maxFields: limits.maxFields, fromBytes, fromParsed };
}

/**
 * Refuses a body whose declared length is over the limit before reading any of it. A reader
 * that drains the whole body first (to keep the connection usable) turns a sender that never
 * sends it into a hung request.
 */
export function refuseDeclaredOversize(
  contentEncoding: string | null | undefined,
  contentLength: string | null | undefined,
  limit: number,
): void {
  const declared = Number(contentLength ?? undefined);
  if ((contentEncoding == null || contentEncoding.toLowerCase() === 'identity') && declared > limit) {
    throw new PostbackError('body.too_large', 'the body is larger than the limit');
  }
}

/** A body's text into fields, as its format reads. */
export function parseBodyAs(format: BodyFormat, text: string, maxFields: number): FieldRecord {
  switch (format) {
    case 'json':
      return parseJsonBody(text, maxFields);
    case 'xml':
      return parseXmlBody(text, maxFields);
    case 'form':
      return parseUrlEncoded(text, maxFields);
  }
}

/** Converts a value another parser produced to the shape our own JSON reader gives. */
function toFieldValue(value: unknown, depth: number): FieldValue {
  if (depth > MAX_NESTING_DEPTH) {
    throw new PostbackError('body.invalid', `the body is nested deeper than ${MAX_NESTING_DEPTH} levels`);
  }
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (value === null || value === undefined) return '';
  // Nested values are frozen as they are made (see FieldValue).
  if (Array.isArray(value)) return Object.freeze(value.map((item: unknown) => toFieldValue(item, depth + 1)));
  if (typeof value === 'object') {
    const record = createRecord();
    for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
      record[key] = toFieldValue(item, depth + 1);
    }
    return Object.freeze(record);
  }
  throw new PostbackError('body.invalid', 'the body holds a value that is not text');
}

const BODY_PARSER_CODES: Readonly<Record<string, PostbackErrorCode>> = {
  'entity.too.large': 'body.too_large',
  'charset.unsupported': 'charset.unsupported',
  'encoding.unsupported': 'content_encoding.unsupported',
  'request.aborted': 'request.aborted',
};

/**
 * Maps body-parser's http-errors (`type` such as `entity.too.large`), ours or a host parser's
 * (express.json() before the router), to our codes.
 */
export function fromBodyParserError(error: unknown): PostbackError {
  if (error instanceof PostbackError) return error;
  const details = error as { type?: unknown; status?: unknown };
  const code = typeof details.type === 'string' ? BODY_PARSER_CODES[details.type] : undefined;
  if (code !== undefined) {
    const message = code === 'body.too_large' ? 'the body is larger than the limit' : (error as Error).message;
    return new PostbackError(code, message, { cause: error });
  }
  if (typeof details.status === 'number' && details.status < 500) {
    return new PostbackError('body.invalid', 'the body could not be read', { cause: error });
  }
  return new PostbackError('internal', 'the body could not be read', { cause: error });
}
