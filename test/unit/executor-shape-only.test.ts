/**
 * The executor runs no kernel for a device node whose results only `shape` / `size` read (exporters keep e.g. the
 * attention scores alive for their shape): the shape is inferred, the reader still gets it, nothing else changes.
 */
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import { interpret } from '../../ir/interpret.js';
import '../../ir/ops/index.js';
import { makeTensor } from '../../ir/tensor.js';
import { Executor } from '../../src/runtime/executor.js';
import { RecordingBackend } from '../../src/runtime/recording.js';

describe('shape-only device nodes', () => {
  it('a matmul read only through shape (even via another such node) launches no kernel', async () => {
    const b = new GraphBuilder('g');
    const x = b.input('x', 'f32', ['n', 3]);
    const w = b.weight(
      'w',
      makeTensor(
        'f32',
        [3, 4],
        Array.from({ length: 12 }, (_, i) => i),
      ),
    );
    const y = b.op('matmul', [x, w]); // [n, 4]: only its shape is read
    const yy = b.op('relu', [y]); // read only by the shape below: skipped too
    const row = b.input('row', 'f32', [1, 4]);
    b.output(b.op('expand', [row, b.op('shape', [yy])]), 'z');
    b.output(b.op('neg', [x]), 'nx');
    const g = b.build();
    const rec = new RecordingBackend();
    const feeds = {
      x: makeTensor(
        'f32',
        [5, 3],
        Array.from({ length: 15 }, (_, i) => i),
      ),
      row: makeTensor('f32', [1, 4], [1, 2, 3, 4]),
    };
    await new Executor(g, rec).run(feeds);
    expect(rec.launches.map((l) => l.op)).toEqual(['expand', 'neg']);
    expect(interpret(g, feeds)['z']!.shape).toEqual([5, 4]);
  });

  it('a node that is also a graph output still runs', async () => {
    const b = new GraphBuilder('g');
    const x = b.input('x', 'f32', ['n', 3]);
    const y = b.op('relu', [x]);
    const row = b.input('row', 'f32', [1, 3]);
    b.output(b.op('expand', [row, b.op('shape', [y])]), 'z');
    b.output(y, 'y');
    const rec = new RecordingBackend();
    const feeds = { x: makeTensor('f32', [2, 3], [1, -2, 3, -4, 5, -6]), row: makeTensor('f32', [1, 3], [1, 2, 3]) };
    await new Executor(b.build(), rec).run(feeds);
    expect(rec.launches.map((l) => l.op).sort()).toEqual(['expand', 'relu']);
  });
});
