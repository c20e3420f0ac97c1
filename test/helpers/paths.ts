/** Paths the tests share: the repo root and ../shared beside it (CI clones the repo with shared/ next to it). */
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const SHARED = resolve(REPO_ROOT, '../shared');
export const CONFORMANCE = resolve(SHARED, 'conformance');
export const hasShared = existsSync(CONFORMANCE);

/** fast-check runs: small fixed count in CI, `KILN_PROP_RUNS=1000` for a long run. */
export const PROP_RUNS = Number(process.env['KILN_PROP_RUNS'] ?? 60);
