import type { Step } from './plan';
import { explore, type RunResult, type RunSettings } from './run';

/** The kind of a violation: the invariant it names, before the colon. */
function kindOf(violation: string): string {
  return violation.split(':')[0] ?? violation;
}

/** Whether the plan still shows the violation's kind, in any of `tries` runs (timing varies). */
async function stillFails(
  settings: RunSettings,
  plan: readonly Step[],
  kind: string,
  tries: number,
): Promise<RunResult | null> {
  for (let attempt = 0; attempt < tries; attempt += 1) {
    const result = await explore(settings, plan);
    if (result.violations.some((violation) => kindOf(violation) === kind)) return result;
  }
  return null;
}

/**
 * Shrinks a failing run's plan (delta debugging): drops chunks of steps, halving their size,
 * while the first violation's kind still shows; gives the smallest failing run found.
 */
export async function minimize(
  failing: RunResult,
  tries = 2,
  log: (line: string) => void = () => undefined,
): Promise<RunResult> {
  const kind = kindOf(failing.violations[0] ?? '');
  let best = failing;
  let chunks = 2;
  while (best.plan.length >= 2) {
    const size = Math.ceil(best.plan.length / chunks);
    let shrunk = false;
    for (let start = 0; start < best.plan.length; start += size) {
      const candidate = [...best.plan.slice(0, start), ...best.plan.slice(start + size)];
      const result = await stillFails(best.settings, candidate, kind, tries);
      if (result !== null) {
        log(`  ${candidate.length} steps still fail`);
        best = result;
        shrunk = true;
        break;
      }
    }
    if (shrunk) chunks = Math.max(2, chunks - 1);
    else if (size === 1) break;
    else chunks = Math.min(best.plan.length, chunks * 2);
  }
  return best;
}
