/** `kiln prune` (issue 14). */
import type { QuantizeIo } from './quantize.js';

export const PRUNE_HELP = `  prune MODEL [options]               (not yet available)`;

export async function pruneCommand(_rest: string[], io: QuantizeIo): Promise<number> {
  io.err('kiln prune: not yet available\n');
  return 2;
}
