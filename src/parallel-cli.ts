/** `kiln plan`, `kiln run-parallel`, `kiln generate --tp/--pp` (issue 15). */
import type { QuantizeIo } from './quantize.js';

export const PARALLEL_HELP = `  plan, run-parallel                  (not yet available)`;

export async function planCommand(_rest: string[], io: QuantizeIo): Promise<number> {
  io.err('kiln plan: not yet available\n');
  return 2;
}

export async function runParallelCommand(_rest: string[], io: QuantizeIo): Promise<number> {
  io.err('kiln run-parallel: not yet available\n');
  return 2;
}

export async function generateParallelCommand(_rest: string[], io: QuantizeIo): Promise<number> {
  io.err('kiln generate --tp/--pp: not yet available\n');
  return 2;
}
