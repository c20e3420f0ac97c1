/** `kiln quantize --out X.onnx`: the quantized stories260K as ONNX (MatMulNBits) that imports back to the same numbers. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import '../../ir/index.js';
import { makeTensor } from '../../ir/tensor.js';
import { quantizeRtn, quantizeW8A8 } from '../../passes/quant/index.js';
import { importOnnxFile } from '../../src/frontends/onnx/import.js';
import { bundledModelsDir, loadLanguageModel } from '../../src/generate/load.js';
import { quantizeCommand } from '../../src/quantize.js';
import { expectSameOutputs, randomFeeds } from '../helpers/onnx-roundtrip.js';

const STORIES = join(bundledModelsDir(), 'stories260K.bin');

describe('kiln quantize --out X.onnx', () => {
  it('W8A8: DynamicQuantizeLinear-style int8 activations and MatMulInteger, same outputs after import', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-qonnx-'));
    try {
      const file = join(dir, 'w8.onnx');
      const io = { out: () => {}, err: () => {} };
      const args = [STORIES, '--method', 'w8a8', '--out', file, '--backend', 'reference', '--calib-windows', '1'];
      expect(await quantizeCommand(args, io)).toBe(0);
      const { graph: back } = await importOnnxFile(file);
      expect(back.nodes.filter((n) => n.op === 'matmul_integer').length).toBeGreaterThan(30);
      const want = loadLanguageModel(STORIES);
      quantizeW8A8(want.graph, undefined);
      const feeds = randomFeeds(want.graph, 3, { batch: 1, seq: 3, past: 2 });
      feeds['input_ids'] = makeTensor('i64', [1, 3], [1, 403, 407]);
      feeds['position_ids'] = makeTensor('i64', [1, 3], [2, 3, 4]);
      expectSameOutputs(want.graph, back, feeds);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);

  it('writes MatMulNBits projections that import as matmul_nbits with the kiln-quantized graph’s outputs', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-qonnx-'));
    try {
      const file = join(dir, 'q.onnx');
      let out = '';
      const io = { out: (t: string) => (out += t), err: () => {} };
      const args = [STORIES, '--bits', '4', '--group', '32', '--out', file, '--backend', 'reference'];
      expect(await quantizeCommand([...args, '--calib-windows', '1'], io)).toBe(0);
      expect(out).toMatch(/ONNX: \d+ bytes/);
      expect(out).toMatch(/wrote .*q\.onnx \(ONNX\)/);
      const { graph: back } = await importOnnxFile(file);
      const want = loadLanguageModel(STORIES);
      const report = quantizeRtn(want.graph, { bits: 4, group: 32 });
      expect(back.nodes.filter((n) => n.op === 'matmul_nbits')).toHaveLength(report.layers.length);
      expect(report.layers.length).toBeGreaterThan(30);
      const feeds = randomFeeds(want.graph, 3, { batch: 1, seq: 3, past: 2 });
      feeds['input_ids'] = makeTensor('i64', [1, 3], [1, 403, 407]);
      feeds['position_ids'] = makeTensor('i64', [1, 3], [2, 3, 4]);
      expectSameOutputs(want.graph, back, feeds);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);
});
