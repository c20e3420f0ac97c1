/**
 * kiln → ONNX → kiln round trips for the export tests: export, import the bytes back (external data from memory),
 * a structural hash that ignores what ONNX cannot carry (attribute defaults written or not, f64 float attributes held
 * as f32, trailing absent inputs, initializers no node reads), and output comparison under the reference interpreter.
 */
import { expect } from 'vitest';
import { isFloat, type DType } from '../../ir/dtype.js';
import { Graph, Node, Value } from '../../ir/graph.js';
import { interpret } from '../../ir/interpret.js';
import { getOp, resolveAttrs, type AttrValue } from '../../ir/registry.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { printGraph, structuralHash } from '../../ir/text.js';
import {
  exportOnnxModel,
  memoryExternalData,
  type ExportOptions,
  type ExportedOnnx,
} from '../../src/frontends/onnx/export.js';
import { importOnnx } from '../../src/frontends/onnx/import.js';
import { compareWithReference, reducesLong, tolerance } from './compare.js';

export interface RoundTrip {
  graph: Graph;
  exported: ExportedOnnx;
}

/** Export `g` and import the model back (external data read from the returned chunks). */
export function roundTrip(g: Graph, opts: ExportOptions = {}): RoundTrip {
  const exported = exportOnnxModel(g, opts);
  const ext = exported.external;
  const externalData = ext ? memoryExternalData({ [ext.location]: ext.chunks }) : undefined;
  return { graph: importOnnx(exported.model, externalData ? { externalData } : {}).graph, exported };
}

/**
 * Structural hash of `g` with every attribute default filled in, float attributes rounded to f32 (ONNX stores them
 * so) and constants nothing reads dropped.
 */
export function normalizedHash(g: Graph): string {
  return structuralHash(normalized(g));
}

/**
 * The normalized graph normalizedHash hashes: a copy sharing the inputs' and constants' values (no data is copied or
 * printed twice), with new nodes and node results.
 */
export function normalized(g: Graph): Graph {
  const read = new Set<Value>(g.outputs);
  for (const n of g.nodes) for (const v of n.inputs) if (v) read.add(v);
  const c = new Graph(g.name);
  c.inputs = [...g.inputs];
  c.constants = g.constants.filter((v) => read.has(v));
  const map = new Map<Value, Value>();
  const at = (v: Value) => map.get(v) ?? v;
  for (const n of g.nodes) {
    const def = getOp(n.op);
    const attrs: Record<string, AttrValue> = { ...resolveAttrs(def, n.attrs, n.name) };
    for (const [k, v] of Object.entries(attrs)) if (def.attrs[k]!.kind === 'float') attrs[k] = Math.fround(v as number);
    // trailing absent optional inputs are no inputs
    let k = n.inputs.length;
    while (k > 0 && n.inputs[k - 1] === null) k--;
    const outs = n.outputs.map((o) => {
      const v = new Value(o.name, o.type);
      map.set(o, v);
      return v;
    });
    c.nodes.push(
      new Node(
        n.name,
        n.op,
        n.inputs.slice(0, k).map((x) => (x ? at(x) : null)),
        outs,
        attrs,
      ),
    );
  }
  c.outputs = g.outputs.map(at);
  return c;
}

/** `back` is `g` up to what ONNX cannot carry: equal normalized structural hashes (the canonical texts on failure). */
export function expectSameGraph(back: Graph, g: Graph): void {
  const [a, b] = [normalized(back), normalized(g)];
  if (structuralHash(a) !== structuralHash(b)) {
    expect(printGraph(a, { canonical: true })).toBe(printGraph(b, { canonical: true }));
  }
  expect(structuralHash(a)).toBe(structuralHash(b));
}

/** Small deterministic PRNG. */
export function rng(seed: number): () => number {
  let a = seed >>> 0 || 1;
  return () => {
    a ^= a << 13;
    a >>>= 0;
    a ^= a >>> 17;
    a ^= a << 5;
    a >>>= 0;
    return a / 4294967296;
  };
}

/** Random feeds for every graph input (floats ~ N(0,1)-ish, integers in [0, 3), bools 0/1); `dims` binds symbols. */
export function randomFeeds(g: Graph, seed = 1, dims: Record<string, number> = {}): Record<string, Tensor> {
  const r = rng(seed);
  const feeds: Record<string, Tensor> = {};
  for (const v of g.inputs) {
    const shape = v.type.shape.map((d) => (typeof d === 'number' ? d : (dims[d] ?? 2)));
    const n = shape.reduce((a, b) => a * b, 1);
    const dt: DType = v.type.dtype;
    const values = Array.from({ length: n }, () =>
      isFloat(dt) ? (r() + r() + r() - 1.5) * 2 : dt === 'bool' ? (r() < 0.5 ? 0 : 1) : Math.floor(r() * 3),
    );
    feeds[v.name] = makeTensor(dt, shape, values);
  }
  return feeds;
}

/**
 * Both graphs' outputs on the same feeds (by position: the import keeps the order), compared within the dtype's
 * tolerance (exact for integers; NaN never passes unless both are NaN where the reference itself is NaN).
 */
export function expectSameOutputs(a: Graph, b: Graph, feeds: Record<string, Tensor>, exact = false): void {
  const ra = interpret(a, feeds);
  const rb = interpret(b, feeds);
  expect(b.outputs.length).toBe(a.outputs.length);
  a.outputs.forEach((o, i) => {
    const want = ra[o.name]!;
    const got = rb[b.outputs[i]!.name]!;
    if (exact) {
      expect(got.dtype).toBe(want.dtype);
      expect(got.shape).toEqual(want.shape);
      expect(Array.from(got.data)).toEqual(Array.from(want.data));
      return;
    }
    const tol = tolerance(want.dtype, reducesLong(a));
    expect(compareWithReference(o.name, got, want, tol)).toBeUndefined();
  });
}
