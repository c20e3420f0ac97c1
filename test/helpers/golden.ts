/**
 * Golden files (checked-in expected text). A missing or different file fails; `KILN_UPDATE_GOLDEN=1` (re)writes it.
 * Writing a missing file and then comparing the text with itself would pass any codegen change that renames a case.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export const UPDATE_GOLDEN = process.env['KILN_UPDATE_GOLDEN'] === '1';

/** undefined when `text` equals the golden file (or it was just written in update mode), else what is wrong. */
export function goldenMismatch(file: string, text: string, update = UPDATE_GOLDEN): string | undefined {
  if (update) {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, text);
    return undefined;
  }
  if (!existsSync(file)) return `golden file ${file} is missing: create it with KILN_UPDATE_GOLDEN=1 and review it`;
  const want = readFileSync(file, 'utf8');
  if (want === text) return undefined;
  const a = want.split('\n');
  const b = text.split('\n');
  let i = 0;
  while (i < a.length && a[i] === b[i]) i++;
  return (
    `${file} differs at line ${i + 1}:\n  golden:    ${a[i] ?? '<end>'}\n  generated: ${b[i] ?? '<end>'}\n` +
    'if the change is intended, regenerate with KILN_UPDATE_GOLDEN=1 and review the diff'
  );
}
