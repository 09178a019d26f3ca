import type { Request } from 'express';

// What makes Express's URL parser (parseurl) fall back to url.parse: a URL that does not start
// with "/" (absolute form), or whitespace, "#" and a few look-alikes in it. Broader here than
// there, which only sends more URLs to the getter.
const PARSED_SPECIALLY = /[\s#\u00a0\ufeff]/;

/**
 * req.path, without Express's getter in the common case: the getter parses the URL again once
 * the mount path has been cut from it, an allocation and a parse per request. Same answer:
 * the part of req.url before the "?".
 */
export function requestPath(req: Request): string {
  const path = pathOf(req.url);
  return path.startsWith('/') && !PARSED_SPECIALLY.test(path) ? path : req.path;
}

/** The path of a request target: the part before the "?". */
export function pathOf(url: string): string {
  const queryAt = url.indexOf('?');
  return queryAt === -1 ? url : url.slice(0, queryAt);
}
