import { routeOf } from '../core/routes';
import type { PostbackRoute } from '../events';

/**
 * Checks and normalizes the `basePath` of nodeHandler and fetchHandler: '' (the root) or a path
 * that starts with "/", without a trailing slash, a query or a fragment. A mistake throws at
 * setup, naming the option.
 */
export function normalizeBasePath(basePath: unknown): string {
  if (basePath === undefined) return '';
  if (typeof basePath !== 'string' || (basePath !== '' && !basePath.startsWith('/')) || /[?#\s]/.test(basePath)) {
    throw new TypeError(`option basePath must be a path such as "/impact", got ${JSON.stringify(basePath)}`);
  }
  return basePath.replace(/\/+$/, '');
}

/** The route a path serves below the base path ("/impact/actions" → actions), or undefined for any other path. */
export function routeBelow(path: string, basePath: string): PostbackRoute | undefined {
  const below = belowBasePath(path, basePath);
  return below === undefined ? undefined : routeOf(below);
}

/**
 * The part of a URL path below the base path ("/impact/actions" → "/actions"), or undefined
 * when the path is not below it. Case-insensitive, as Express matches a mount path.
 */
function belowBasePath(path: string, basePath: string): string | undefined {
  if (basePath === '') return path;
  if (path.length <= basePath.length || path[basePath.length] !== '/') return undefined;
  const head = path.slice(0, basePath.length);
  return head === basePath || head.toLowerCase() === basePath.toLowerCase() ? path.slice(basePath.length) : undefined;
}
