/**
 * Fresh dim symbols (data-dependent sizes) are named after their node — unique within a graph — never drawn from a
 * process-wide counter, so the same model imported or built twice prints the same IR text.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import '../../ir/ops/index.js';
import { printGraph } from '../../ir/text.js';
import { loadModel } from '../../src/inspect.js';
import { CONFORMANCE, hasShared } from '../helpers/paths.js';

function reshapeByInput(): string {
  const b = new GraphBuilder('g');
  const x = b.input('x', 'f32', [2, 'n']);
  const shape = b.input('shape', 'i64', [2]);
  b.output(b.op('reshape', [x, shape], {}, 'r'));
  return printGraph(b.build());
}

describe('fresh dim symbols', () => {
  it('building the same graph twice prints the same text, symbols named after the node', () => {
    const first = reshapeByInput();
    expect(first).toContain('%r: f32[reshape_0_d0,reshape_0_d1] = reshape(%x, %shape) @reshape_0');
    expect(reshapeByInput()).toBe(first);
  });

  it.skipIf(!hasShared)('importing the same ONNX model twice prints the same text', () => {
    const file = join(CONFORMANCE, 'onnx-node/test_range_float_type_positive_delta/model.onnx');
    const first = printGraph(loadModel(file));
    expect(first).toContain('%output: f32[Range_0_d0] = range(%start, %limit, %delta) @Range_0');
    expect(printGraph(loadModel(file))).toBe(first);
  });
});
