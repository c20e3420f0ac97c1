/** The golden-file check itself: it must fail on a missing file unless asked to update. */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { goldenMismatch } from './golden.js';

const dir = mkdtempSync(join(tmpdir(), 'kiln-golden-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('goldenMismatch', () => {
  it('fails on a missing golden file and does not create it', () => {
    const file = join(dir, 'missing.wgsl');
    expect(goldenMismatch(file, 'fn main() {}', false)).toMatch(/missing.*KILN_UPDATE_GOLDEN=1/);
    expect(existsSync(file)).toBe(false);
  });

  it('fails on different text, naming the first differing line', () => {
    const file = join(dir, 'k.cu');
    writeFileSync(file, 'a\nb\nc\n');
    expect(goldenMismatch(file, 'a\nB\nc\n', false)).toMatch(/line 2:[\s\S]*golden: +b[\s\S]*generated: B/);
    expect(goldenMismatch(file, 'a\nb\nc\n', false)).toBeUndefined();
  });

  it('writes (also into a new folder) only in update mode', () => {
    const file = join(dir, 'new/sub/k.wgsl');
    expect(goldenMismatch(file, 'x', true)).toBeUndefined();
    expect(readFileSync(file, 'utf8')).toBe('x');
    expect(goldenMismatch(file, 'y', false)).toMatch(/differs/);
  });
});
