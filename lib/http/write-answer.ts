import type { ServerResponse } from 'node:http';
import type { Answer } from '../core/answer';

/**
 * Writes an answer on a Node response (Express, node:http, Koa). Headers go through setHeader,
 * not writeHead's object, so that a logger reading res.getHeader() afterwards finds them.
 * A response already answered (a host's timeout handler got there first) is left alone.
 */
export function writeAnswer(res: ServerResponse, answer: Answer): void {
  if (res.headersSent || res.writableEnded) return;
  const { headers } = answer;
  for (const name in headers) res.setHeader(name, headers[name] as string);
  // The status through writeHead rather than `res.statusCode = status`, which writeHead then
  // stores again: a store to Express's response object was a measurable cost per request.
  res.writeHead(answer.status);
  res.end(answer.body);
}

/**
 * Writes an answer that may still be coming; when writing throws (a response object a host
 * replaced), the failure is reported and the connection dropped.
 */
export function writeWhenReady(
  res: ServerResponse,
  answer: Answer | Promise<Answer>,
  answerNotWritten: (error: unknown) => void,
): void {
  const failed = (error: unknown): void => {
    answerNotWritten(error);
    res.destroy();
  };
  if (answer instanceof Promise) {
    // Caught here, not by the host: Express 4 does not catch rejected promises.
    answer
      .then((ready) => {
        writeAnswer(res, ready);
      })
      .catch(failed);
    return;
  }
  try {
    writeAnswer(res, answer);
  } catch (error) {
    failed(error);
  }
}
