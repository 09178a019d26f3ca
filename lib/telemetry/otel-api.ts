import type * as otel from '@opentelemetry/api';
import { isMissingModule } from '../stores/optional-module';

export type OtelApi = typeof otel;

const NAME = '@opentelemetry/api';

/**
 * Loads @opentelemetry/api when the host installed it, and gives null when it did not: it is an
 * optional peer, and the package bundles no SDK. With the API but no SDK registered, every span
 * and instrument is the API's no-op.
 */
export function loadOtelApi(): OtelApi | null {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- an optional peer, loaded only when installed
    return require(NAME) as OtelApi;
  } catch (error) {
    if (isMissingModule(error, NAME)) return null;
    // Installed but broken: said at setup rather than traced silently never.
    throw new Error(`option telemetry: ${NAME} is installed but could not be loaded`, { cause: error });
  }
}
