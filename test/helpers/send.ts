import type http from 'node:http';
import request from 'supertest';
import { encode, type Format } from './fixtures';

/** Sends one postback to `path` in `format`. */
export function send(
  app: http.RequestListener,
  path: string,
  format: Format,
  fields: Readonly<Record<string, string>>,
) {
  const { method, query, contentType, body } = encode(format, fields);
  if (method === 'GET') return request(app).get(`${path}${query}`);
  return request(app)
    .post(path)
    .set('Content-Type', contentType ?? 'text/plain')
    .send(body ?? '');
}

/** Sends bytes exactly as given, whatever the Content-Type (superagent would re-serialise JSON). */
export function sendBytes(app: http.RequestListener | string, path: string, contentType: string | null, bytes: Buffer) {
  const req = request(app).post(path);
  if (contentType === null) req.unset('Content-Type');
  else req.set('Content-Type', contentType);
  return req.serialize((body: unknown) => body as string).send(bytes as unknown as string);
}
