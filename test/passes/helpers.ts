/** Before / after IR text helpers for pass tests: compare canonical text (what the structural hash hashes). */
import { expect } from 'vitest';
import type { Graph } from '../../ir/graph.js';
import '../../ir/ops/index.js';
import { parseGraph, printGraph, structuralHash } from '../../ir/text.js';
import { verify } from '../../ir/verify.js';
import { applyRules, type Rule } from '../../passes/rewrite.js';

export function ir(text: string): Graph {
  const g = parseGraph(text);
  verify(g);
  return g;
}

/** Run `rules` on the graph of `before` to a fixed point; the result verifies. */
export function rewrite(before: string, rules: readonly Rule[]): Graph {
  const g = ir(before);
  applyRules(g, rules);
  verify(g);
  return g;
}

export function expectSameGraph(got: Graph, want: Graph | string): void {
  const w = typeof want === 'string' ? ir(want) : want;
  expect(printGraph(got, { canonical: true })).toBe(printGraph(w, { canonical: true }));
  expect(structuralHash(got)).toBe(structuralHash(w));
}

/** A near miss: the rules must leave the graph exactly as it was. */
export function expectUnchanged(before: string, rules: readonly Rule[]): void {
  expectSameGraph(rewrite(before, rules), before);
}
