import bodyParser from 'body-parser';
import type { Request, Response } from 'express';
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
}

export interface BodyLimits {
  /** Largest body in bytes, after inflation. */
  readonly limit: number;
  readonly maxFields: number;
}

type RawParser = (req: Request, res: Response, next: (error?: unknown) => void) => void;

/**
 * Builds the body reader once per router. Reading goes through body-parser's raw parser, which
 * enforces the limit on the inflated bytes (413 before reading when Content-Length is already
 * too large), inflates gzip/deflate/br, and refuses unknown encodings; parsing is ours.
 */
export function createBodyReader(limits: BodyLimits) {
  const readRaw = bodyParser.raw({ type: () => true, limit: limits.limit, inflate: true }) as unknown as RawParser;
  const decoder = new TextDecoder('utf-8', { fatal: true });

  function parseText(text: string, contentType: string | undefined): ReceivedBody | null {
    const plan = planBody(contentType);
    if (isEmptyBody(text)) return null;
    const format = plan === 'sniff' ? sniffFormat(text) : plan;
    return { format, record: parseAs(format, text, limits.maxFields) };
  }

  function decode(buffer: Buffer): string {
    try {
      return decoder.decode(buffer);
    } catch {
      throw new PostbackError('body.invalid', 'the body is not valid UTF-8');
    }
  }

  return async function readBody(req: Request, res: Response): Promise<ReceivedBody | null> {
    const contentType = req.headers['content-type'];
    // A host app that ran express.json(), express.urlencoded() or express.text() before the
    // router has consumed the stream already: use what it left instead of waiting for data
    // that will never come.
    if (req.readableEnded) return fromParsedBody(req.body as unknown, contentType);
    planBody(contentType);
    refuseDeclaredOversize(req, limits.limit);
    await new Promise<void>((resolve, reject) => {
      readRaw(req, res, (error) => {
        if (error === undefined) resolve();
        else reject(fromBodyParserError(error));
      });
    });
    const body = req.body as unknown;
    return Buffer.isBuffer(body) ? parseText(decode(body), contentType) : null;
  };

  function fromParsedBody(body: unknown, contentType: string | undefined): ReceivedBody | null {
    if (body === undefined || body === null) return null;
    if (Buffer.isBuffer(body)) return parseText(decode(body), contentType);
    if (typeof body === 'string') return parseText(body, contentType);
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
    return { format, record };
  }
}

/**
 * Refuses a body whose declared length is over the limit before reading any of it. body-parser
 * would also refuse it, but only after draining the whole body (to keep the connection usable),
 * which a sender that never sends it turns into a hung request.
 */
function refuseDeclaredOversize(req: Request, limit: number): void {
  const encoding = req.headers['content-encoding'];
  const declared = Number(req.headers['content-length']);
  if ((encoding === undefined || encoding.toLowerCase() === 'identity') && declared > limit) {
    throw new PostbackError('body.too_large', 'the body is larger than the limit');
  }
}

function parseAs(format: BodyFormat, text: string, maxFields: number): FieldRecord {
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
