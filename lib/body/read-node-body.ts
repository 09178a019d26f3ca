import type { IncomingMessage, ServerResponse } from 'node:http';
import bodyParser from 'body-parser';
import { declaresBody } from '../core/incoming';
import { PostbackError } from '../errors';
import { planBody } from './content-type';
import { fromBodyParserError, refuseDeclaredOversize, type BodyReader, type ReceivedBody } from './read-body';

/** A Node request as a host framework may have left it: with `body` set by a parser that ran first. */
export type NodeRequest = IncomingMessage & { body?: unknown };

type RawParser = (req: NodeRequest, res: ServerResponse | undefined, next: (error?: unknown) => void) => void;

/**
 * Reads a Node request's body (Express, node:http, Fastify, Koa). Reading goes through
 * body-parser's raw parser, which enforces the limit on the inflated bytes, inflates
 * gzip/deflate/br, and refuses unknown encodings; parsing is the BodyReader's.
 */
export function createNodeBodyReader(reader: BodyReader) {
  const readRaw = bodyParser.raw({ type: () => true, limit: reader.limit, inflate: true }) as unknown as RawParser;

  return async function readNodeBody(req: NodeRequest, res: ServerResponse | undefined): Promise<ReceivedBody | null> {
    const contentType = req.headers['content-type'];
    // A host app that ran express.json(), express.urlencoded() or express.text() before the
    // router has consumed the stream already: use what it left instead of waiting for data
    // that will never come.
    if (req.readableEnded) {
      // Read to its end by someone who left nothing where a parser leaves it (Koa's body
      // parsers keep it on ctx.request.body): the fields are gone, and an empty body would
      // credit what the query alone says.
      if (req.body === undefined) {
        if (!declaresBody(req.headers)) return null;
        throw new PostbackError('internal', 'the body was read before the postback handler could read it');
      }
      return reader.fromParsed(req.body, contentType);
    }
    planBody(contentType);
    refuseDeclaredOversize(req.headers['content-encoding'], req.headers['content-length'], reader.limit);
    await new Promise<void>((resolve, reject) => {
      readRaw(req, res, (error) => {
        if (error === undefined) resolve();
        else reject(fromBodyParserError(error));
      });
    });
    const { body } = req;
    return Buffer.isBuffer(body) ? reader.fromBytes(body, contentType) : null;
  };
}
