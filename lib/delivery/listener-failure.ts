import { PostbackError } from '../errors';

/** The longest part of a listener's own message the `error` event repeats. */
const CAUSE_MESSAGE_LIMIT = 300;

/**
 * The `error` event for a listener that threw or rejected: its message names the event and says
 * what the listener's error said (its first line, bounded), so that a log of the message alone
 * shows the cause; the error itself is its `cause`. The router's tokens are taken out of it: a
 * host's message may quote the postback's fields or its URL, and impact.com sends the token as
 * one. Never throws, whatever was thrown: the claim is released after this.
 */
export function listenerFailure(eventName: string, failure: unknown, tokens: readonly string[]): PostbackError {
  return new PostbackError('listener.failed', `a "${eventName}" listener failed: ${saidBy(failure, tokens)}`, {
    cause: failure,
  });
}

function saidBy(failure: unknown, tokens: readonly string[]): string {
  let said: string;
  try {
    said = textOf(failure).split('\n', 1)[0] ?? '';
  } catch {
    // An object whose toString throws, or one without any.
    said = '(unprintable)';
  }
  // The longest first: a token that begins another must not leave the other's end behind.
  for (const token of [...tokens].sort((a, b) => b.length - a.length)) {
    said = said.replaceAll(token, '[token]').replaceAll(encodeURIComponent(token), '[token]');
  }
  if (said.length > CAUSE_MESSAGE_LIMIT) said = `${said.slice(0, CAUSE_MESSAGE_LIMIT)}…`;
  return said === '' ? '(no message)' : said;
}

function textOf(failure: unknown): string {
  if (failure instanceof Error) return typeof failure.message === 'string' ? failure.message : '(no message)';
  if (typeof failure === 'string') return failure;
  if (typeof failure === 'symbol') return failure.toString();
  return String(failure);
}
