import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { f16BitsToNumber } from '../../ir/dtype.js';
import { KilnError, ParseError, UnsupportedError } from '../../ir/errors.js';
import { at } from '../../ir/tensor.js';
import { ggufModel, parseGguf } from '../../src/frontends/gguf.js';
import { PROP_RUNS, SHARED } from '../helpers/paths.js';
import { fileProbe, requireTool } from '../helpers/tools.js';

const TINY = resolve(SHARED, 'models/llama-2-tiny-random.gguf');

/** A little GGUF writer: typed metadata values and raw tensor data. */
type Meta = [key: string, type: number, value: unknown];
interface TensorSpec {
  name: string;
  dims: number[];
  type: number;
  data: Uint8Array;
}
function gguf(meta: Meta[], tensors: TensorSpec[], opts: { version?: number; alignment?: number } = {}): Uint8Array {
  const out: number[] = [];
  const u8 = (v: number): void => {
    out.push(v & 255);
  };
  const n = (v: number, bytes: number) => {
    for (let i = 0; i < bytes; i++) u8(Number((BigInt(v) >> BigInt(8 * i)) & 255n));
  };
  const f = (v: number, bytes: 4 | 8) => {
    const b = new Uint8Array(bytes);
    const dv = new DataView(b.buffer);
    if (bytes === 4) dv.setFloat32(0, v, true);
    else dv.setFloat64(0, v, true);
    out.push(...b);
  };
  const str = (s: string) => {
    const b = new TextEncoder().encode(s);
    n(b.length, 8);
    out.push(...b);
  };
  const value = (type: number, v: unknown): void => {
    if (type === 8) return str(v as string);
    if (type === 9) {
      const [et, items] = v as [number, unknown[]];
      n(et, 4);
      n(items.length, 8);
      for (const it of items) value(et, it);
      return;
    }
    if (type === 6) return f(v as number, 4);
    if (type === 12) return f(v as number, 8);
    if (type === 7) return u8(v ? 1 : 0);
    const size = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 10: 8, 11: 8 }[type]!;
    n(v as number, size);
  };
  n(0x46554747, 4);
  n(opts.version ?? 3, 4);
  n(tensors.length, 8);
  n(meta.length, 8);
  for (const [k, t, v] of meta) {
    str(k);
    n(t, 4);
    value(t, v);
  }
  let off = 0;
  const align = opts.alignment ?? 32;
  const offsets: number[] = [];
  for (const t of tensors) {
    str(t.name);
    n(t.dims.length, 4);
    for (const d of t.dims) n(d, 8);
    n(t.type, 4);
    n(off, 8);
    offsets.push(off);
    off += Math.ceil(t.data.length / align) * align;
  }
  while (out.length % align) u8(0);
  const start = out.length;
  const file = new Uint8Array(start + off);
  file.set(out);
  tensors.forEach((t, i) => file.set(t.data, start + offsets[i]!));
  return file;
}
const f32s = (v: number[]) => new Uint8Array(Float32Array.from(v).buffer);
const u16s = (v: number[]) => new Uint8Array(Uint16Array.from(v).buffer);

describe('GGUF (hand-made files)', () => {
  const meta: Meta[] = [
    ['general.architecture', 8, 'test'],
    ['u8', 0, 200],
    ['i8', 1, -3],
    ['u16', 2, 60000],
    ['i16', 3, -30000],
    ['u32', 4, 4e9],
    ['i32', 5, -2e9],
    ['f32', 6, 1e-5],
    ['bool', 7, true],
    ['u64', 10, 2 ** 40],
    ['i64', 11, -(2 ** 40)],
    ['f64', 12, 0.1],
    ['arr', 9, [5, [1, -2, 3]]],
    ['strs', 9, [8, ['a', 'é', '']]],
    [
      'nested',
      9,
      [
        9,
        [
          [4, [1, 2]],
          [4, []],
        ],
      ],
    ],
  ];
  // f32 [2, 3] (dims fastest-first: [3, 2]); f16 [2] = 1.5, -2; bf16 [1] = 3; Q8_0 [32] (one 34-byte block: d = 2,
  // qs[0] = -3 → -6, the rest 0); Q2_K [256] (84 bytes, a type kiln does not decode)
  const tensors: TensorSpec[] = [
    { name: 'a', dims: [3, 2], type: 0, data: f32s([1, 2, 3, 4, 5, 6]) },
    { name: 'h', dims: [2], type: 1, data: u16s([0x3e00, 0xc000]) },
    { name: 'b', dims: [1], type: 30, data: u16s([0x4040]) },
    { name: 'q', dims: [32], type: 8, data: Uint8Array.from({ length: 34 }, (_, i) => [0x00, 0x40, 0xfd][i] ?? 0) },
    { name: 'q2', dims: [256], type: 10, data: new Uint8Array(84) },
  ];

  it('reads metadata of every value type, tensor infos with reversed dims, and F32 / F16 / BF16 data', () => {
    for (const version of [2, 3]) {
      const g = parseGguf(gguf(meta, tensors, { version }));
      expect(g.version).toBe(version);
      expect(g.alignment).toBe(32);
      expect(Object.fromEntries(g.metadata)).toEqual({
        'general.architecture': 'test',
        u8: 200,
        i8: -3,
        u16: 60000,
        i16: -30000,
        u32: 4e9,
        i32: -2e9,
        f32: 1e-5, // the f32 nearest 1e-5, read back as the decimal it was written from
        bool: true,
        u64: 2 ** 40,
        i64: -(2 ** 40),
        f64: 0.1,
        arr: [1, -2, 3],
        strs: ['a', 'é', ''],
        nested: [[1, 2], []],
      });
      expect(g.tensorInfos.map((t) => [t.name, t.shape, t.typeName])).toEqual([
        ['a', [2, 3], 'F32'],
        ['h', [2], 'F16'],
        ['b', [1], 'BF16'],
        ['q', [32], 'Q8_0'],
        ['q2', [256], 'Q2_K'],
      ]);
      expect(g.tensor('a')).toMatchObject({ dtype: 'f32', shape: [2, 3] });
      expect(at(g.tensor('a'), [1, 0])).toBe(4);
      expect(g.tensor('h')).toMatchObject({ dtype: 'f16' });
      expect([...g.tensor('h').data]).toEqual([1.5, -2]);
      expect(g.tensor('b')).toMatchObject({ dtype: 'bf16' });
      expect([...g.tensor('b').data]).toEqual([3]);
      expect(g.tensor('q')).toMatchObject({ dtype: 'f32', shape: [32] });
      expect([...g.tensor('q').data]).toEqual([-6, ...new Array<number>(31).fill(0)]);
      expect(g.ggml('q')).toMatchObject({ format: 'Q8_0' });
      expect(g.ggml('a')).toBeUndefined();
      expect(() => g.tensor('q2')).toThrow(UnsupportedError);
      expect(() => g.tensor('q2')).toThrow(/Q2_K.*tensor 'q2'/);
      expect(() => g.tensor('nope')).toThrow(KilnError);
    }
  });

  it('honours general.alignment', () => {
    const g = parseGguf(gguf([['general.alignment', 4, 64]], tensors, { alignment: 64 }));
    expect(g.alignment).toBe(64);
    expect(g.dataOffset % 64).toBe(0);
    expect([...g.tensor('h').data]).toEqual([1.5, -2]);
  });

  it('malformed files are ParseErrors', () => {
    const file = gguf(meta, tensors);
    const edit = (pos: number, write: (dv: DataView) => void) => {
      const c = file.slice();
      write(new DataView(c.buffer, pos));
      return () => parseGguf(c);
    };
    expect(edit(0, (dv) => dv.setUint32(0, 0x46554748, true))).toThrow(/bad magic/);
    expect(edit(4, (dv) => dv.setUint32(0, 1, true))).toThrow(/version 1 is not supported/);
    expect(edit(4, (dv) => dv.setUint32(0, 4, true))).toThrow(ParseError);
    expect(edit(8, (dv) => dv.setBigUint64(0, 2n ** 50n, true))).toThrow(/tensor count/);
    expect(edit(16, (dv) => dv.setBigUint64(0, 2n ** 62n, true))).toThrow(/beyond 2\^53/);
    // the first key's string length runs past the end
    expect(edit(24, (dv) => dv.setBigUint64(0, 10n ** 9n, true))).toThrow(/needs 1000000000 bytes/);
    // the first value type
    expect(edit(24 + 8 + 20, (dv) => dv.setUint32(0, 99, true))).toThrow(/unknown value type 99/);
    expect(() => parseGguf(file.subarray(0, 100))).toThrow(ParseError);
    // data section cut short: the last tensor's range is past the end
    expect(() => parseGguf(file.subarray(0, file.length - 40))).toThrow(/tensor 'q2'/);
    const absurd = gguf([], [{ name: 'x', dims: [2 ** 31, 2 ** 31], type: 0, data: new Uint8Array(4) }]);
    expect(() => parseGguf(absurd)).toThrow(/tensor 'x'/);
    const unknownType = gguf([], [{ name: 'x', dims: [1], type: 77, data: new Uint8Array(4) }]);
    expect(() => parseGguf(unknownType)).toThrow(/unknown ggml type 77.*tensor 'x'/);
    const partialBlock = gguf([], [{ name: 'x', dims: [31], type: 2, data: new Uint8Array(18) }]);
    expect(() => parseGguf(partialBlock)).toThrow(/not whole blocks/);
    const badAlign = gguf([['general.alignment', 4, 0]], []);
    expect(() => parseGguf(badAlign)).toThrow(/general.alignment/);
    const badUtf8 = gguf([['x', 8, 'ab']], []);
    badUtf8[24 + 8 + 1 + 4 + 8] = 0xff;
    expect(() => parseGguf(badUtf8)).toThrow(/UTF-8/);
    expect(() => ggufModel(file)).toThrow(/architecture "test" is not supported/);
  });

  it('a llama model: Q/K rows un-permuted from interleaved pairs, linears transposed, tied head', () => {
    // dim 8, 2 heads (hd 4), 1 kv head, hidden 2, vocab 3, 1 block; every value = its index in its tensor
    const seq = (k: number) => f32s(Array.from({ length: k }, (_, i) => i));
    const t = (name: string, dims: number[]) => ({ name, dims, type: 0, data: seq(dims.reduce((a, b) => a * b, 1)) });
    const file = gguf(
      [
        ['general.architecture', 8, 'llama'],
        ['llama.embedding_length', 4, 8],
        ['llama.feed_forward_length', 4, 2],
        ['llama.block_count', 4, 1],
        ['llama.attention.head_count', 4, 2],
        ['llama.attention.head_count_kv', 4, 1],
        ['llama.attention.layer_norm_rms_epsilon', 6, 1e-6],
        ['llama.rope.freq_base', 6, 500000],
        ['llama.context_length', 4, 64],
      ],
      [
        t('token_embd.weight', [8, 3]),
        t('blk.0.attn_norm.weight', [8]),
        t('blk.0.attn_q.weight', [8, 8]),
        t('blk.0.attn_k.weight', [8, 4]),
        t('blk.0.attn_v.weight', [8, 4]),
        t('blk.0.attn_output.weight', [8, 8]),
        t('blk.0.ffn_norm.weight', [8]),
        t('blk.0.ffn_gate.weight', [8, 2]),
        t('blk.0.ffn_up.weight', [8, 2]),
        t('blk.0.ffn_down.weight', [2, 8]),
        t('output_norm.weight', [8]),
      ],
    );
    const { config, weights: w, tokenizer } = ggufModel(file);
    expect(tokenizer).toBeUndefined();
    expect(config).toEqual({
      arch: 'llama',
      dim: 8,
      hiddenDim: 2,
      layers: 1,
      heads: 2,
      kvHeads: 1,
      vocab: 3,
      maxSeq: 64,
      normEps: 1e-6,
      ropeTheta: 500000,
      tiedHead: true,
    });
    // stored attn_q row-major [out 8, in 8]; canonical column 1 = stored row 2, column 2 = row 1, column 6 = row 5
    expect(at(w.get('layers.0.wq'), [3, 1])).toBe(2 * 8 + 3);
    expect(at(w.get('layers.0.wq'), [3, 2])).toBe(1 * 8 + 3);
    expect(at(w.get('layers.0.wq'), [0, 6])).toBe(5 * 8 + 0);
    expect(at(w.get('layers.0.wk'), [7, 2])).toBe(1 * 8 + 7);
    expect(at(w.get('layers.0.wv'), [7, 2])).toBe(2 * 8 + 7);
    expect(at(w.get('layers.0.w2'), [1, 5])).toBe(5 * 2 + 1);
    expect(at(w.get('tok_embeddings'), [2, 7])).toBe(2 * 8 + 7);
    expect(w.has('output')).toBe(false);
  });
});

describe('GGUF gpt2 (hand-made)', () => {
  it('maps a gpt2 file: Conv1D weights stored [out, in] are transposed back, biases as they are, BPE tokenizer', () => {
    // dim 2, 1 head, hidden 4, 1 block, vocab 3, context 4; every value = its index in its tensor
    const seq = (k: number) => f32s(Array.from({ length: k }, (_, i) => i));
    const t = (name: string, dims: number[]) => ({ name, dims, type: 0, data: seq(dims.reduce((a, b) => a * b, 1)) });
    const blk = (n: string, dims: number[]) => t(`blk.0.${n}`, dims);
    const file = gguf(
      [
        ['general.architecture', 8, 'gpt2'],
        ['gpt2.embedding_length', 4, 2],
        ['gpt2.feed_forward_length', 4, 4],
        ['gpt2.block_count', 4, 1],
        ['gpt2.attention.head_count', 4, 1],
        ['gpt2.context_length', 4, 4],
        ['gpt2.attention.layer_norm_epsilon', 6, 1e-5],
        ['tokenizer.ggml.model', 8, 'gpt2'],
        ['tokenizer.ggml.tokens', 9, [8, ['a', 'b', 'ab']]],
        ['tokenizer.ggml.merges', 9, [8, ['a b']]],
        ['tokenizer.ggml.eos_token_id', 4, 2],
      ],
      [
        t('token_embd.weight', [2, 3]),
        t('position_embd.weight', [2, 4]),
        blk('attn_norm.weight', [2]),
        blk('attn_norm.bias', [2]),
        blk('attn_qkv.weight', [2, 6]),
        blk('attn_qkv.bias', [6]),
        blk('attn_output.weight', [2, 2]),
        blk('attn_output.bias', [2]),
        blk('ffn_norm.weight', [2]),
        blk('ffn_norm.bias', [2]),
        blk('ffn_up.weight', [2, 4]),
        blk('ffn_up.bias', [4]),
        blk('ffn_down.weight', [4, 2]),
        blk('ffn_down.bias', [2]),
        t('output_norm.weight', [2]),
        t('output_norm.bias', [2]),
      ],
    );
    const { config, weights: w, tokenizer } = ggufModel(file);
    expect(config).toEqual({
      arch: 'gpt2',
      dim: 2,
      hiddenDim: 4,
      layers: 1,
      heads: 1,
      vocab: 3,
      maxSeq: 4,
      normEps: 1e-5,
    });
    // attn_qkv stored row-major [out 6, in 2]: canonical [in k, out c] = stored c·2 + k
    expect(w.get('h.0.attn.c_attn.weight').shape).toEqual([2, 6]);
    expect(at(w.get('h.0.attn.c_attn.weight'), [1, 4])).toBe(4 * 2 + 1);
    // ffn_down stored [out 2, in 4] → c_proj [4, 2]
    expect(at(w.get('h.0.mlp.c_proj.weight'), [3, 1])).toBe(1 * 4 + 3);
    expect([...w.get('h.0.attn.c_attn.bias').data]).toEqual([0, 1, 2, 3, 4, 5]);
    expect(at(w.get('wpe'), [3, 1])).toBe(7);
    expect(w.names()).toHaveLength(2 + 12 + 2);
    expect(tokenizer!.encode('abba')).toEqual([2, 1, 0]);
    expect(tokenizer!.decode([2, 1, 0])).toBe('abba');
  });
});

const noShared = await requireTool('../shared/models', fileProbe(TINY, 'clone the shared data beside the repo'));
describe.skipIf(noShared)('llama-2-tiny-random.gguf', () => {
  const bytes = readFileSync(TINY);

  it('parses: v3, 12 f16 tensors, 32000-token vocabulary in the metadata', () => {
    const g = parseGguf(bytes);
    expect(g.version).toBe(3);
    expect(g.tensorInfos).toHaveLength(12);
    expect(g.metadata.get('general.architecture')).toBe('llama');
    expect((g.metadata.get('tokenizer.ggml.tokens') as string[]).slice(0, 4)).toEqual([
      '<unk>',
      '<s>',
      '</s>',
      '<0x00>',
    ]);
    expect(g.tensorInfos.find((t) => t.name === 'token_embd.weight')).toMatchObject({
      dims: [8, 32000],
      shape: [32000, 8],
      typeName: 'F16',
    });
  });

  it('loads the llama model with values at the un-permuted / transposed positions', () => {
    const { config, weights: w } = ggufModel(bytes);
    expect(config).toEqual({
      arch: 'llama',
      dim: 8,
      hiddenDim: 32,
      layers: 1,
      heads: 2,
      kvHeads: 2,
      vocab: 32000,
      maxSeq: 4096,
      normEps: 1e-5,
      ropeTheta: 10000,
      tiedHead: false,
    });
    const g = parseGguf(bytes);
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const data = g.dataOffset;
    expect(data % 32).toBe(0);
    const off = (name: string) => data + g.tensorInfos.find((t) => t.name === name)!.offset;
    const h = (pos: number) => f16BitsToNumber(dv.getUint16(pos, true));
    expect(at(w.get('tok_embeddings'), [31999, 5])).toBe(h(off('token_embd.weight') + (31999 * 8 + 5) * 2));
    expect(w.get('tok_embeddings').dtype).toBe('f16');
    // hd 4: stored row 5 (head 1, pair 0, second) → canonical column 4 + 2 = 6; stored row 2 → column 1
    const q = off('blk.0.attn_q.weight');
    expect(at(w.get('layers.0.wq'), [3, 6])).toBe(h(q + (5 * 8 + 3) * 2));
    expect(at(w.get('layers.0.wq'), [7, 1])).toBe(h(q + (2 * 8 + 7) * 2));
    const k = off('blk.0.attn_k.weight');
    expect(at(w.get('layers.0.wk'), [0, 5])).toBe(h(k + (6 * 8 + 0) * 2));
    // ffn_down stored [dim 8, hidden 32] → w2 [32, 8]
    expect(at(w.get('layers.0.w2'), [20, 3])).toBe(h(off('blk.0.ffn_down.weight') + (3 * 32 + 20) * 2));
    expect(at(w.get('output'), [2, 12345])).toBe(h(off('output.weight') + (12345 * 8 + 2) * 2));
    const normAt = off('output_norm.weight');
    expect(w.get('norm').data[7]).toBe(dv.getFloat32(normAt + 28, true));
  });

  it('the embedded sentencepiece tokenizer encodes as Llama 2 does', () => {
    const tok = ggufModel(bytes).tokenizer!;
    expect([tok.vocabSize, tok.bos, tok.eos]).toEqual([32000, 1, 2]);
    // Llama 2's ids: ▁Once 9038, ▁upon 2501, ▁a 263, ▁time 931; ▁Hello 15043, ▁world 3186
    expect(tok.encode('Once upon a time', { bos: true })).toEqual([1, 9038, 2501, 263, 931]);
    expect(tok.encode('Hello world')).toEqual([15043, 3186]);
    expect(tok.decode([1, 9038, 2501, 263, 931, 2])).toBe('Once upon a time');
    // byte fallback: U+10FFFF is no piece → its four UTF-8 bytes, <0xNN> = byte + 3
    expect(tok.encode('\u{10FFFF}').slice(-4)).toEqual([0xf4 + 3, 0x8f + 3, 0xbf + 3, 0xbf + 3]);
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 30 }), (s) => {
        expect(tok.decode(tok.encode(s, { bos: true }))).toBe(s.replaceAll('\u2581', ' '));
      }),
      { numRuns: PROP_RUNS },
    );
  });
});
