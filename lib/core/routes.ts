import type { PostbackRoute } from '../events';

/** impact.com gives each event kind its own URL, and nothing in a request says which kind it is. */
export const ROUTE_EVENTS: Readonly<Record<PostbackRoute, 'action' | 'inquiry' | 'catalog'>> = {
  actions: 'action',
  clearing: 'action',
  inquiries: 'inquiry',
  catalog: 'catalog',
};

// Case-insensitive and tolerant of a trailing slash, like Express's own routing.
const routesByPath = new Map<string, PostbackRoute>();
for (const route of Object.keys(ROUTE_EVENTS) as PostbackRoute[]) {
  routesByPath.set(`/${route}`, route);
  routesByPath.set(`/${route}/`, route);
}

/** The route a path below the mount path serves ("/actions"), or undefined for any other path. */
export function routeOf(path: string): PostbackRoute | undefined {
  return routesByPath.get(path.toLowerCase());
}
