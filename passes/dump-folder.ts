/** Node only: the dump instrument writing its IR files into a folder (kept out of `passes/index.ts`, browser-safe). */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dumpInstrument, type Instrument } from './context.js';

export function dumpToFolder(dir: string): Instrument {
  mkdirSync(dir, { recursive: true });
  return dumpInstrument((file, text) => writeFileSync(join(dir, file), text));
}
