/**
 * The GGUF writer (src/frontends/gguf-write.ts) and quantized GGUF loading: bytes re-parsed give the metadata and the
 * tensors back; kiln's int4 / int8 layouts convert to Q4_0 / Q4_1 / Q8_0 (values equal to the kiln dequantization
 * when the scales are f16 values) and the rest are typed errors; stories260K quantized by RTN, written as GGUF and
 * loaded again generates the same greedy text as the kiln-quantized session; a llama GGUF holding every block format
 * loads as matmul_ggml / get_rows_ggml and runs.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import { UnsupportedError } from '../../ir/errors.js';
import type { Node } from '../../ir/graph.js';
import '../../ir/index.js';
import { interpret } from '../../ir/interpret.js';
import { dequantizeNBits, nbitsGeometry } from '../../ir/ops/blockq.js';
import { dequantizeGgml, GGML_FORMATS, quantizeGgml } from '../../ir/ops/ggml.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { quantizeRtn } from '../../passes/quant/index.js';
import { parseGguf } from '../../src/frontends/gguf.js';
import { kilnToGgml, llamaGguf, writeGguf, type KilnBlocks } from '../../src/frontends/gguf-write.js';
import { LanguageModelSession } from '../../src/generate/lm.js';
import { loadLanguageModel } from '../../src/generate/load.js';
import { quantizeCommand } from '../../src/quantize.js';
import type { LlamaConfig } from '../../src/models/config.js';
import { ggmlModel, ggmlModelFeeds, GGML_MODEL_FORMATS } from '../helpers/ggml-model.js';
import { SHARED } from '../helpers/paths.js';
import { emuProbe, fileProbe, requireTool } from '../helpers/tools.js';

const STORIES = resolve(SHARED, 'models/stories260K.bin');
const TINY = resolve(SHARED, 'models/llama-2-tiny-random.gguf');

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('writeGguf', () => {
  it('round trip: metadata of each type, F32 and block-format tensors, 32-byte aligned data', () => {
    const r = rng(1);
    const w = Float32Array.from({ length: 4 * 256 }, () => r() - 0.5);
    const q4k = quantizeGgml('Q4_K', w, 4, 256);
    const q80 = quantizeGgml('Q8_0', w.subarray(0, 96), 3, 32);
    const bytes = writeGguf(
      [
        { key: 'general.architecture', value: 'test' },
        { key: 'n', value: 7, type: 'u32' },
        { key: 'neg', value: -3 },
        { key: 'eps', value: 1e-5, type: 'f32' },
        { key: 'flag', value: true },
        { key: 'big', value: 2 ** 40, type: 'u64' },
        { key: 'words', value: ['a', 'é', ''] },
        { key: 'ints', value: [1, -2, 3], type: 'i32' },
        { key: 'floats', value: [0.5, -0.25], type: 'f32' },
      ],
      [
        { name: 'f', shape: [2, 3], type: 'F32', data: [1, 2, 3, 4, 5, 6] },
        { name: 'k', shape: [4, 256], type: 'Q4_K', data: q4k },
        { name: 'e', shape: [3, 32], type: 'Q8_0', data: q80 },
      ],
    );
    const g = parseGguf(bytes);
    expect(g.version).toBe(3);
    expect(Object.fromEntries(g.metadata)).toEqual({
      'general.architecture': 'test',
      n: 7,
      neg: -3,
      eps: 1e-5,
      flag: true,
      big: 2 ** 40,
      words: ['a', 'é', ''],
      ints: [1, -2, 3],
      floats: [0.5, -0.25],
    });
    expect(g.tensorInfos.map((t) => [t.name, t.shape, t.typeName, t.offset % 32])).toEqual([
      ['f', [2, 3], 'F32', 0],
      ['k', [4, 256], 'Q4_K', 0],
      ['e', [3, 32], 'Q8_0', 0],
    ]);
    expect([...g.tensor('f').data]).toEqual([1, 2, 3, 4, 5, 6]);
    expect(g.ggml('k')!.format).toBe('Q4_K');
    expect([...g.ggml('k')!.bytes]).toEqual([...q4k]);
    expect([...g.ggml('e')!.bytes]).toEqual([...q80]);
    expect(g.ggml('f')).toBeUndefined();
    // tensor() of a block format: ggml's dequantization as f32
    expect([...g.tensor('e').data]).toEqual([...Float32Array.from(dequantizeGgml('Q8_0', q80, 3, 32))]);
  });

  it('ragged block-format rows are a typed error naming the tensor', () => {
    expect(() => writeGguf([], [{ name: 'bad', shape: [2, 48], type: 'Q4_0', data: new Uint8Array(54) }])).toThrow(
      /not whole blocks.*tensor 'bad'/,
    );
  });
});

describe('kiln block-quantized weights → ggml', () => {
  /** A matmul_nbits weight by RTN on a random [K, N] matrix: the kiln dequantization and the converted blocks. */
  function rtnWeight(K: number, N: number, bits: 4 | 8, group: number, symmetric: boolean) {
    const r = rng(K * 31 + N + bits);
    const graph = oneMatmul(K, N, r);
    const rep = quantizeRtn(graph, { bits, group, symmetric });
    const node = graph.nodes.find((n) => n.op === 'matmul_nbits')!;
    expect(rep.layers).toHaveLength(1);
    const [, b, s, z] = node.inputs;
    const geo = nbitsGeometry(node.attrs, (m) => {
      throw new Error(m);
    });
    const ref = dequantizeNBits(
      geo,
      b!.data!.data as ArrayLike<number>,
      s!.data!.data as ArrayLike<number>,
      z ? { data: z.data!.data as ArrayLike<number>, packed: true } : undefined,
      undefined,
      (m) => {
        throw new Error(m);
      },
    );
    return { node, ref };
  }

  it.each([
    [8, true, 'Q8_0'],
    [4, true, 'Q4_0'],
    [4, false, 'Q4_1'],
  ] as const)('int%i symmetric=%s → %s, values equal to kiln dequantization up to f16 scales', (bits, sym, fmt) => {
    const K = 64;
    const N = 5;
    const { node, ref } = rtnWeight(K, N, bits, 32, sym);
    const blocks = kilnBlocksOf(node);
    const out = kilnToGgml(blocks);
    expect(out.format).toBe(fmt);
    const back = dequantizeGgml(out.format, out.bytes, N, K);
    // each element moves by at most its scale's f16 rounding: |x| · 2^-11 (+ |m| rounding for Q4_1)
    for (let i = 0; i < N * K; i++) expect(Math.abs(back[i]! - ref[i]!)).toBeLessThanOrEqual(2 ** -10 * 2);
    // with scales that are f16 values the conversion is exact
    const exact = kilnToGgml({ ...blocks, scale: () => 0.125, ...(blocks.zp ? { zp: () => 3 } : {}) }, true);
    const ex = dequantizeGgml(exact.format, exact.bytes, N, K);
    for (let n = 0; n < N; n++)
      for (let k = 0; k < K; k++)
        expect(ex[n * K + k]).toBe((blocks.q(n, k) - (blocks.zp ? 3 : 2 ** (bits - 1))) * 0.125);
    expect(exact.roundedScales).toBe(0);
    expect(() => kilnToGgml({ ...blocks, scale: () => 0.1 }, true)).toThrow(/not an f16 value/);
  });

  it('layouts without a ggml format are UnsupportedErrors naming the tensor', () => {
    const { node } = rtnWeight(64, 3, 4, 64, true);
    expect(() => kilnToGgml(kilnBlocksOf(node))).toThrow(UnsupportedError);
    expect(() => kilnToGgml(kilnBlocksOf(node))).toThrow(/blocks of 32.*tensor 'w'/);
    const { node: n8 } = rtnWeight(64, 3, 8, 32, false);
    expect(() => kilnToGgml(kilnBlocksOf(n8))).toThrow(/8-bit zero points/);
    const { node: ragged } = rtnWeight(48, 3, 4, 32, true);
    expect(() => kilnToGgml(kilnBlocksOf(ragged))).toThrow(/K = 48/);
  });
});

/** A one-matmul graph y = x · W (W [K, N] random) to quantize. */
function oneMatmul(K: number, N: number, r: () => number) {
  const b = new GraphBuilder('g');
  const x = b.input('x', 'f32', [1, K]);
  const w = b.weight(
    'w',
    makeTensor(
      'f32',
      [K, N],
      Array.from({ length: K * N }, () => r() - 0.5),
    ),
  );
  b.output(b.matmul(x, w), 'y');
  return b.build();
}

/** The writer's view of a matmul_nbits node (its rows, codes, scales, zero points), built independently here. */
function kilnBlocksOf(node: Node): KilnBlocks {
  const [, b, s, z] = node.inputs;
  const K = node.attrs['K'] as number;
  const N = node.attrs['N'] as number;
  const bits = node.attrs['bits'] as number;
  const block = node.attrs['block_size'] as number;
  const nb = Math.ceil(K / block);
  const row = nb * block;
  const d = b!.data!.data as ArrayLike<number>;
  const code = (arr: ArrayLike<number>, i: number) =>
    bits === 8 ? arr[i]! : i & 1 ? arr[i >> 1]! >> 4 : arr[i >> 1]! & 15;
  const zRow = Math.ceil((nb * bits) / 8) * (8 / bits);
  return {
    name: 'w',
    N,
    K,
    bits,
    block,
    q: (n, k) => code(d, n * row + k),
    scale: (n, j) => Number(s!.data!.data[n * nb + j]!),
    ...(z ? { zp: (n: number, j: number) => code(z.data!.data as ArrayLike<number>, n * zRow + j) } : {}),
  };
}

const noStories =
  (await requireTool('../shared/models', fileProbe(STORIES, 'clone the shared data beside the repo'))) ||
  (await requireTool('g++ (cuda-emu)', emuProbe));

describe.skipIf(noStories)('stories260K: kiln RTN int4 → GGUF → kiln', () => {
  it('loads as matmul_ggml Q4_0 and generates the same greedy text as the kiln-quantized session', async () => {
    const quant = loadLanguageModel(STORIES);
    quantizeRtn(quant.graph, { bits: 4, group: 32 });
    const { bytes, report } = llamaGguf(quant.graph, quant.config as LlamaConfig, quant.tokenizer, {
      unsupported: 'f32',
    });
    // w2 (K = hidden 172: a ragged last block) has no ggml format: rejected by default, else its values as F32
    expect(() => llamaGguf(quant.graph, quant.config as LlamaConfig, quant.tokenizer)).toThrow(
      /K = 172 is not whole blocks of 32.*blk\.0\.ffn_down\.weight/,
    );
    expect(report.tensors.filter((t) => t.type === 'Q4_0')).toHaveLength(6 * 5);
    expect(report.tensors.filter((t) => /dequantized/.test(t.source))).toHaveLength(5);
    const dir = mkdtempSync(join(tmpdir(), 'kiln-gguf-'));
    try {
      const file = join(dir, 't.gguf');
      writeFileSync(file, bytes);
      const back = loadLanguageModel(file);
      expect(back.config).toEqual(quant.config);
      const ops = back.graph.nodes.map((n) => n.op);
      expect(ops.filter((o) => o === 'matmul_ggml')).toHaveLength(6 * 5);
      expect(ops.filter((o) => o === 'matmul')).toHaveLength(5);
      const prompt = quant.tokenizer!.encode('Once upon a time', { bos: true });
      expect(back.tokenizer!.encode('Once upon a time', { bos: true })).toEqual(prompt);
      const texts: string[] = [];
      for (const m of [quant, back]) {
        const lm = await LanguageModelSession.create(m, { backend: 'cuda-emu' });
        try {
          const out: number[] = [];
          for await (const t of lm.generate(prompt, { maxTokens: 24 })) out.push(t);
          texts.push(m.tokenizer!.decode(out));
        } finally {
          lm.dispose();
        }
      }
      expect(texts[0]!.length).toBeGreaterThan(20);
      expect(texts[1]).toBe(texts[0]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);
});

describe.skipIf(noStories)('kiln quantize --out X.gguf', () => {
  it('writes Q4_0 projections (w2: ragged K = 172 as F32) that kiln generate loads packed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-gguf-'));
    try {
      const file = join(dir, 't.gguf');
      let out = '';
      const io = { out: (t: string) => (out += t), err: () => {} };
      const args = [STORIES, '--bits', '4', '--group', '32', '--method', 'rtn', '--out', file, '--backend', 'cuda-emu'];
      expect(await quantizeCommand(args, io)).toBe(0);
      expect(out).toMatch(/GGUF tensors: 17 F32, 30 Q4_0; \d+ block scales rounded to f16/);
      expect(out).toMatch(/blk\.0\.ffn_down\.weight: F32 \(.*K = 172 is not whole blocks of 32/);
      expect(out).toMatch(/wrote .*t\.gguf \(GGUF\)/);
      const m = loadLanguageModel(file);
      expect(m.graph.nodes.filter((n) => n.op === 'matmul_ggml')).toHaveLength(30);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);
});

describe('a llama GGUF with every block format', () => {
  const rel = (a: Tensor, b: Tensor) =>
    Math.sqrt(
      [...a.data].reduce((s, x, i) => s + (Number(x) - Number(b.data[i]!)) ** 2, 0) /
        [...b.data].reduce((s, x) => s + Number(x) ** 2, 0),
    );

  it('loads as matmul_ggml / get_rows_ggml over the file bytes, equals its dequantized f32 graph, writes back as is', () => {
    const { report, bytes, loaded, packed, plain } = ggmlModel();
    expect(new Set(report.tensors.map((t) => t.type))).toEqual(new Set([...GGML_FORMATS, 'F32']));
    const file = parseGguf(bytes);
    for (const [name, f] of Object.entries(GGML_MODEL_FORMATS)) expect(file.ggml(name)?.format).toBe(f);
    const ops = packed.nodes.map((n) => n.op);
    expect(ops.filter((o) => o === 'matmul_ggml')).toHaveLength(8);
    expect(ops).toContain('get_rows_ggml');
    // no f32 matrix is left: every 2-D weight is its ggml bytes (the RoPE tables are not weights)
    const f32Matrices = packed.constants.filter(
      (c) => c.type.dtype === 'f32' && c.type.shape.length === 2 && !c.name.startsWith('rope_'),
    );
    expect(f32Matrices).toEqual([]);
    expect(plain.nodes.map((n) => n.op)).not.toContain('matmul_ggml');
    const feeds = ggmlModelFeeds(packed, [1, 5, 39]);
    expect(rel(interpret(packed, feeds)['logits']!, interpret(plain, feeds)['logits']!)).toBeLessThan(1e-6);
    // written again from the packed graph: the ggml bytes come back unchanged
    const again = parseGguf(llamaGguf(packed, loaded.config as LlamaConfig, undefined).bytes);
    for (const name of Object.keys(GGML_MODEL_FORMATS))
      expect([...again.ggml(name)!.bytes]).toEqual([...file.ggml(name)!.bytes]);
  });

  it('a tied head reads the quantized table through matmul_ggml (one packed constant for lookup and head)', () => {
    const { packed, plain } = ggmlModel(true);
    const head = packed.nodes.filter((n) => n.op === 'matmul_ggml' && n.attrs['N'] === 40);
    const rows = packed.nodes.filter((n) => n.op === 'get_rows_ggml');
    expect(head).toHaveLength(1);
    expect(rows).toHaveLength(1);
    expect(head[0]!.inputs[1]).toBe(rows[0]!.inputs[0]);
    expect(packed.nodes.map((n) => n.op)).not.toContain('einsum');
    const feeds = ggmlModelFeeds(packed, [3, 0, 17, 2]);
    expect(rel(interpret(packed, feeds)['logits']!, interpret(plain, feeds)['logits']!)).toBeLessThan(1e-6);
  });
});

const noTiny = await requireTool('../shared/models', fileProbe(TINY, 'clone the shared data beside the repo'));
describe.skipIf(noTiny)('llama-2-tiny-random.gguf (f16) still loads', () => {
  it('builds without packed ops', () => {
    expect(existsSync(TINY)).toBe(true);
    const m = loadLanguageModel(TINY);
    expect(m.graph.nodes.map((n) => n.op)).not.toContain('matmul_ggml');
  });
});
