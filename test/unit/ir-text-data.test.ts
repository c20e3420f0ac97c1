/** IR text with external constant data (the AOT module's graph.kir + weights.bin): exact round trip, located errors. */
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import '../../ir/ops/index.js';
import { makeTensor } from '../../ir/tensor.js';
import { DataBlob, parseGraph, printGraph, structuralHash } from '../../ir/text.js';

function graph() {
  const b = new GraphBuilder('g');
  const x = b.input('x', 'f32', ['n', 3]);
  const w = b.weight('w', makeTensor('f32', [3, 2], [0.1, -2, 3.5, 1e-8, -0, 7]));
  const h = b.weight('h', makeTensor('f16', [2], [0.5, -1.25]));
  const i = b.weight('i', makeTensor('i64', [2], [1, -3]));
  const q = b.weight('q', makeTensor('i4', [3], [-8, 7, 1]));
  const y = b.op('matmul', [x, w]);
  b.output(b.op('add', [y, b.op('cast', [h], { to: 'f32' })]), 'y');
  b.output(b.op('cast', [i], { to: 'f32' }), 'iy');
  b.output(b.op('cast', [q], { to: 'f32' }), 'qy');
  return b.build();
}

describe('IR text with external data', () => {
  it('round-trips every constant bit for bit through the blob', () => {
    const g = graph();
    const blob = new DataBlob();
    const text = printGraph(g, { externalData: blob });
    expect(text).toMatch(/= data\(0, 24\)/);
    expect(text).not.toMatch(/3\.5/);
    const back = parseGraph(text, { data: blob.bytes() });
    expect(structuralHash(back)).toBe(structuralHash(g));
    for (const c of g.constants) {
      const d = back.constants.find((x) => x.name === c.name)!.data!;
      expect(d.data.constructor).toBe(c.data!.data.constructor);
      expect(Array.from(d.data as ArrayLike<number | bigint>, String)).toEqual(
        Array.from(c.data!.data as ArrayLike<number | bigint>, String),
      );
    }
    // offsets are 16-byte aligned
    for (const m of text.matchAll(/data\((\d+), \d+\)/g)) expect(Number(m[1]) % 16).toBe(0);
  });

  it('a missing or short blob is a located parse error', () => {
    const blob = new DataBlob();
    const text = printGraph(graph(), { externalData: blob });
    expect(() => parseGraph(text)).toThrow(/no data blob was given at line \d+/);
    expect(() => parseGraph(text, { data: new Uint8Array(8) })).toThrow(/outside the 8-byte data blob at line/);
    expect(() => parseGraph(text.replace('data(0, 24)', 'data(0, 20)'), { data: blob.bytes() })).toThrow(
      /holds 20 bytes/,
    );
  });
});
