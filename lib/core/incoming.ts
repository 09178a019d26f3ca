import type { ReceivedBody } from '../body/read-body';

/** Request headers as Node gives them: names in lower case, a repeated header as a list or joined. */
export type RequestHeaders = Readonly<Record<string, string | readonly string[] | undefined>>;

/**
 * A request as any host can describe it: what the receiver needs of it, and nothing of the
 * framework it came through. An adapter builds one per request.
 */
export interface IncomingPostback {
  readonly method: string;
  /** The path as received, the mount path included, without the query (for events and logs). */
  readonly path: string;
  /** The query string after "?", still percent-encoded; '' for none. */
  readonly query: string;
  readonly headers: RequestHeaders;
  /** The peer's address; undefined when the host cannot tell (a closed socket, a Fetch host). */
  readonly remoteAddress: string | undefined;
  /**
   * Reads and parses the body within the receiver's limits (its BodyReader); called at most
   * once, and only after the sender passed the allow-list and the token check. Null for a body
   * that carries nothing.
   */
  readBody(): Promise<ReceivedBody | null>;
}

/** Whether a request says a body follows: chunked, or a Content-Length other than 0. */
export function declaresBody(headers: RequestHeaders): boolean {
  return headers['transfer-encoding'] !== undefined || (headers['content-length'] ?? '0') !== '0';
}
