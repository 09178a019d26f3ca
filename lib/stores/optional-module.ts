/**
 * Loads an optional peer dependency when a store that needs it is created, so the package works
 * without it, and a user who picks the store without installing it is told what to install.
 */
export function loadOptionalModule(name: string, store: string, install: string): unknown {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded only when this store is used
    return require(name) as unknown;
  } catch (error) {
    if (!isMissingModule(error, name)) throw error;
    throw new Error(`${store} needs the package "${name}", which is not installed: run npm install ${install}`, {
      cause: error,
    });
  }
}

/**
 * Whether `require(name)` failed because the package is not installed (not because it failed to
 * load): Node names it in quotes; Yarn Plug'n'Play says a peer "isn't provided", with the same code.
 */
export function isMissingModule(error: unknown, name: string): boolean {
  if ((error as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') return false;
  const { message } = error as Error;
  // Exactly this package: a missing dependency of it ('pg-pool' for 'pg') is a broken install.
  return message.includes(`'${name}'`) || message.includes(`access ${name} `);
}

/** A store's boolean option, as given or its default; anything else throws naming it. */
export function booleanOption(name: string, value: unknown, fallback: boolean): boolean {
  const chosen = value ?? fallback;
  if (typeof chosen !== 'boolean') throw new TypeError(`option ${name} must be true or false`);
  return chosen;
}

export function positiveInteger(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new TypeError(`option ${name} must be a positive integer, got ${String(value)}`);
  }
  return value;
}
