import { PostbackError } from '../errors';

/** The longest part of a listener's own message the `error` event repeats. */
const CAUSE_MESSAGE_LIMIT = 300;

/**
 * The `error` event for a listener that threw or rejected: its message names the event and says
 * what the listener's error said (its first line, bounded), so that a log of the message alone
 * shows the cause; the error itself is its `cause`. The router's tokens are taken out of it: a
 * host's message may quote the postback's fields, and impact.com sends the token as one.
 */
export function listenerFailure(eventName: string, failure: unknown, tokens: readonly string[]): PostbackError {
  let said = failure instanceof Error ? failure.message : String(failure);
  said = said.split('\n', 1)[0] ?? '';
  for (const token of tokens) said = said.replaceAll(token, '[token]');
  if (said.length > CAUSE_MESSAGE_LIMIT) said = `${said.slice(0, CAUSE_MESSAGE_LIMIT)}…`;
  return new PostbackError('listener.failed', `a "${eventName}" listener failed: ${said || '(no message)'}`, {
    cause: failure,
  });
}
