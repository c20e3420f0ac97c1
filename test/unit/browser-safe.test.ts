/**
 * The main entry point must load in a browser: no static import chain from src/index.ts (nor ir/, codegen/) may reach
 * a Node built-in. Node-only code (cuda-emu, cuda, the conformance runner) is loaded on demand or from its own subpath.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/paths.js';

/** Static `import … from '…'` / `export … from '…'` specifiers of a TS file (dynamic import() excluded). */
function staticImports(file: string): string[] {
  const src = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of src.matchAll(/^(?:import|export)\s[^;]*?from\s+'([^']+)'/gms)) {
    if (!/^import\s+type\s/.test(m[0]) && !/^export\s+type\s/.test(m[0])) out.push(m[1]!);
  }
  for (const m of src.matchAll(/^import\s+'([^']+)'/gm)) out.push(m[1]!);
  return out;
}

function reachableNodeBuiltins(entry: string): string[] {
  const seen = new Set<string>();
  const hits: string[] = [];
  const stack = [resolve(REPO_ROOT, entry)];
  while (stack.length) {
    const f = stack.pop()!;
    if (seen.has(f)) continue;
    seen.add(f);
    for (const spec of staticImports(f)) {
      if (spec.startsWith('node:') || ['fs', 'path', 'child_process', 'crypto', 'os'].includes(spec)) {
        hits.push(`${f.slice(REPO_ROOT.length + 1)} imports ${spec}`);
      } else if (spec.startsWith('.')) {
        stack.push(resolve(dirname(f), spec.replace(/\.js$/, '.ts')));
      }
    }
  }
  return hits;
}

describe('browser safety', () => {
  for (const entry of ['src/index.ts', 'ir/index.ts', 'codegen/index.ts', 'passes/index.ts']) {
    it(`${entry} reaches no Node built-in through static imports`, () => {
      expect(reachableNodeBuiltins(entry)).toEqual([]);
    });
  }
  it('the check does see Node built-ins where they are', () => {
    expect(reachableNodeBuiltins('src/conformance.ts').length).toBeGreaterThan(0);
  });
});
