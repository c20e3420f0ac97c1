import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { KilnError, ParseError, UnsupportedError } from '../../ir/errors.js';
import { at } from '../../ir/tensor.js';
import { hfModel } from '../../src/frontends/hf-config.js';
import { parseSafetensors } from '../../src/frontends/safetensors.js';
import { SHARED } from '../helpers/paths.js';
import { fileProbe, requireTool } from '../helpers/tools.js';

const TINY_GPT2 = resolve(SHARED, 'models/tiny_gpt2.safetensors');

/** A safetensors file from a header object and the data bytes; `pad` shifts the header length (alignment tests). */
function stFile(header: unknown, data: Uint8Array, pad = 0): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header) + ' '.repeat(pad));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

const le = (n: number, write: (dv: DataView) => void) => {
  const b = new Uint8Array(n);
  write(new DataView(b.buffer));
  return b;
};

describe('safetensors (hand-made files)', () => {
  // f32 [2,2] = 1 2 3 4 | f16 [2] = 1.5 (0x3e00), -2 (0xc000) | bf16 [1] = 3.0 (0x4040) | i64 [2] = -7, 2^40
  // | i8 [3] = -1 0 127 | bool [2] = 1 0 | u8 [1] = 200 | i32 [1] = -5 | f64 [1] = 0.1
  const data = le(56, (dv) => {
    [1, 2, 3, 4].forEach((v, i) => dv.setFloat32(i * 4, v, true));
    dv.setUint16(16, 0x3e00, true);
    dv.setUint16(18, 0xc000, true);
    dv.setUint16(20, 0x4040, true);
    dv.setBigInt64(22, -7n, true);
    dv.setBigInt64(30, 2n ** 40n, true);
    dv.setInt8(38, -1);
    dv.setInt8(39, 0);
    dv.setInt8(40, 127);
    dv.setUint8(41, 1);
    dv.setUint8(42, 0);
    dv.setUint8(43, 200);
    dv.setInt32(44, -5, true);
    dv.setFloat64(48, 0.1, true);
  });
  const header = {
    __metadata__: { format: 'pt' },
    a: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] },
    h: { dtype: 'F16', shape: [2], data_offsets: [16, 20] },
    b: { dtype: 'BF16', shape: [1], data_offsets: [20, 22] },
    l: { dtype: 'I64', shape: [2], data_offsets: [22, 38] },
    c: { dtype: 'I8', shape: [3], data_offsets: [38, 41] },
    m: { dtype: 'BOOL', shape: [2], data_offsets: [41, 43] },
    u: { dtype: 'U8', shape: [], data_offsets: [43, 44] },
    i: { dtype: 'I32', shape: [1], data_offsets: [44, 48] },
    d: { dtype: 'F64', shape: [1], data_offsets: [48, 56] },
    e: { dtype: 'F32', shape: [0, 3], data_offsets: [56, 56] },
  };

  it('decodes every dtype to its natural array, with metadata', () => {
    for (const pad of [0, 1, 2, 3]) {
      const { tensors: t, metadata } = parseSafetensors(stFile(header, data, pad));
      expect(metadata).toEqual({ format: 'pt' });
      expect([...t.keys()]).toEqual(['a', 'h', 'b', 'l', 'c', 'm', 'u', 'i', 'd', 'e']);
      expect(t.get('a')).toMatchObject({ dtype: 'f32', shape: [2, 2] });
      expect([...t.get('a')!.data]).toEqual([1, 2, 3, 4]);
      expect(t.get('h')).toMatchObject({ dtype: 'f16', shape: [2] });
      expect([...t.get('h')!.data]).toEqual([1.5, -2]);
      expect([...t.get('b')!.data]).toEqual([3]);
      expect(t.get('b')!.dtype).toBe('bf16');
      expect(t.get('l')).toMatchObject({ dtype: 'i64' });
      expect([...t.get('l')!.data]).toEqual([-7, 2 ** 40]);
      expect([...t.get('c')!.data]).toEqual([-1, 0, 127]);
      expect(t.get('c')!.data).toBeInstanceOf(Int8Array);
      expect([...t.get('m')!.data]).toEqual([1, 0]);
      expect(t.get('u')).toMatchObject({ dtype: 'u8', shape: [] });
      expect(t.get('u')!.data[0]).toBe(200);
      expect([...t.get('i')!.data]).toEqual([-5]);
      expect([...t.get('d')!.data]).toEqual([0.1]);
      expect(t.get('e')!.shape).toEqual([0, 3]);
    }
  });

  it('f32 data is a view of the file when 4-aligned, a copy otherwise', () => {
    // header JSON length chosen so that the data starts 4-aligned (pad), then not
    const json = JSON.stringify(header);
    const pad = (4 - ((8 + json.length) % 4)) % 4;
    const file = stFile(header, data, pad);
    const a = parseSafetensors(file).tensors.get('a')!;
    expect(a.data.buffer).toBe(file.buffer);
    const unaligned = stFile(header, data, pad + 1);
    const b = parseSafetensors(unaligned).tensors.get('a')!;
    expect(b.data.buffer).not.toBe(unaligned.buffer);
    expect([...b.data]).toEqual([1, 2, 3, 4]);
  });

  it('malformed files are ParseErrors naming the tensor', () => {
    const file = stFile(header, data);
    const parse =
      (h: unknown, d = data) =>
      () =>
        parseSafetensors(stFile(h, d));
    expect(() => parseSafetensors(file.subarray(0, 5))).toThrow(ParseError);
    expect(() => parseSafetensors(file.subarray(0, 40))).toThrow(/header length/);
    // header claims more data than the file has
    expect(() => parseSafetensors(file.subarray(0, file.length - 1))).toThrow(/outside the 55 data bytes.*tensor 'd'/);
    const huge = file.slice();
    new DataView(huge.buffer).setBigUint64(0, 2n ** 63n, true);
    expect(() => parseSafetensors(huge)).toThrow(ParseError);
    expect(parse({ x: { dtype: 'F32', shape: [2], data_offsets: [0, 4] } })).toThrow(/needs 8 bytes.*tensor 'x'/);
    expect(parse({ x: { dtype: 'F32', shape: [1], data_offsets: [4, 0] } })).toThrow(/tensor 'x'/);
    expect(parse({ x: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } })).toThrow(/shape/);
    expect(parse({ x: { dtype: 'F32', shape: [1.5], data_offsets: [0, 4] } })).toThrow(/shape/);
    expect(parse({ x: { dtype: 'F32', shape: [2 ** 40, 2 ** 40], data_offsets: [0, 4] } })).toThrow(ParseError);
    expect(parse({ x: { dtype: 'Q4', shape: [1], data_offsets: [0, 4] } })).toThrow(/unknown dtype 'Q4'.*tensor 'x'/);
    expect(parse({ x: { dtype: 'F8_E4M3', shape: [1], data_offsets: [0, 1] } })).toThrow(UnsupportedError);
    expect(parse({ x: { shape: [1], data_offsets: [0, 4] } })).toThrow(/dtype is missing/);
    expect(parse({ x: { dtype: 'F32', shape: [1], data_offsets: [0] } })).toThrow(/data_offsets/);
    expect(parse({ x: 3 })).toThrow(/not an object/);
    expect(parse([1, 2])).toThrow(/not a JSON object/);
    expect(parse(null)).toThrow(/not a JSON object/);
    expect(parse({ __metadata__: { a: 1 } })).toThrow(/__metadata__/);
    expect(parse({ m: { dtype: 'BOOL', shape: [1], data_offsets: [0, 1] } }, Uint8Array.of(7))).toThrow(ParseError);
    const big = le(8, (dv) => dv.setBigInt64(0, 2n ** 60n, true));
    expect(parse({ l: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } }, big)).toThrow(KilnError);
    const badJson = new TextEncoder().encode('{"a": ');
    const f = new Uint8Array(8 + badJson.length);
    new DataView(f.buffer).setBigUint64(0, BigInt(badJson.length), true);
    f.set(badJson, 8);
    expect(() => parseSafetensors(f)).toThrow(/not valid JSON/);
  });
});

describe('hfModel (hand-made LLaMA)', () => {
  // hidden 4, 1 head of 4, intermediate 2, vocab 3, 1 layer, untied head; every value = its index within its tensor
  const shapes: Record<string, number[]> = {
    'model.embed_tokens.weight': [3, 4],
    'model.layers.0.input_layernorm.weight': [4],
    'model.layers.0.self_attn.q_proj.weight': [4, 4],
    'model.layers.0.self_attn.k_proj.weight': [4, 4],
    'model.layers.0.self_attn.v_proj.weight': [4, 4],
    'model.layers.0.self_attn.o_proj.weight': [4, 4],
    'model.layers.0.post_attention_layernorm.weight': [4],
    'model.layers.0.mlp.gate_proj.weight': [2, 4],
    'model.layers.0.mlp.up_proj.weight': [2, 4],
    'model.layers.0.mlp.down_proj.weight': [4, 2],
    'model.norm.weight': [4],
    'lm_head.weight': [3, 4],
  };
  const tensors = new Map(
    Object.entries(shapes).map(([k, s]) => {
      const n = s.reduce((a, b) => a * b, 1);
      return [k, { dtype: 'f32' as const, shape: s, data: Float32Array.from({ length: n }, (_, i) => i) }];
    }),
  );
  const cfg = {
    model_type: 'llama',
    hidden_size: 4,
    num_attention_heads: 1,
    num_key_value_heads: 1,
    intermediate_size: 2,
    vocab_size: 3,
    num_hidden_layers: 1,
    max_position_embeddings: 16,
    rms_norm_eps: 1e-6,
    rope_theta: 500000,
    rope_scaling: {
      rope_type: 'llama3',
      factor: 8,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 8192,
    },
  };

  it('maps the config and transposes [out, in] linears (no RoPE permutation: HF is rotate-halves)', () => {
    const { config, weights: w } = hfModel(tensors, cfg);
    expect(config).toEqual({
      arch: 'llama',
      dim: 4,
      hiddenDim: 2,
      layers: 1,
      heads: 1,
      kvHeads: 1,
      vocab: 3,
      maxSeq: 16,
      normEps: 1e-6,
      ropeTheta: 500000,
      ropeScaling: { kind: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 },
      tiedHead: false,
    });
    // q_proj [out 4, in 4]: canonical [in k, out c] = stored c·4 + k
    expect(at(w.get('layers.0.wq'), [3, 1])).toBe(1 * 4 + 3);
    expect(at(w.get('layers.0.wq'), [1, 2])).toBe(2 * 4 + 1);
    expect(w.get('layers.0.w1').shape).toEqual([4, 2]);
    expect(at(w.get('layers.0.w1'), [3, 1])).toBe(1 * 4 + 3);
    expect(w.get('layers.0.w2').shape).toEqual([2, 4]);
    expect(at(w.get('layers.0.w2'), [1, 3])).toBe(3 * 2 + 1);
    expect(w.get('output').shape).toEqual([4, 3]);
    expect(at(w.get('output'), [2, 1])).toBe(1 * 4 + 2);
    expect([...w.get('norm').data]).toEqual([0, 1, 2, 3]);
  });

  it('a config that disagrees with the tensors, or a missing tensor, is a ParseError naming it', () => {
    expect(() => hfModel(tensors, { ...cfg, intermediate_size: 3 })).toThrow(/tensor 'model.layers.0.mlp.gate_proj/);
    const missing = new Map(tensors);
    missing.delete('model.norm.weight');
    expect(() => hfModel(missing, cfg)).toThrow(/missing weight.*tensor 'model.norm.weight'/);
    expect(() => hfModel(tensors, { ...cfg, hidden_size: 'x' })).toThrow(/hidden_size/);
    expect(() => hfModel(tensors, { ...cfg, model_type: 'bert' })).toThrow(/not supported/);
    expect(() => hfModel(tensors, '{bad')).toThrow(/not valid JSON/);
    const tied = new Map(tensors);
    tied.delete('lm_head.weight');
    expect(hfModel(tied, cfg).config).toMatchObject({ tiedHead: true });
  });
});

const noShared = await requireTool('../shared/models', fileProbe(TINY_GPT2, 'clone the shared data beside the repo'));
describe.skipIf(noShared)('tiny_gpt2.safetensors', () => {
  it('parses the header: 16 tensors, f32 views of the file', () => {
    const bytes = readFileSync(TINY_GPT2);
    const { tensors, metadata } = parseSafetensors(bytes);
    expect(metadata).toEqual({ format: 'pt' });
    expect(tensors.size).toBe(16);
    expect(tensors.get('wte.weight')!.shape).toEqual([21, 2]);
    expect(tensors.get('wpe.weight')!.shape).toEqual([1024, 2]);
    expect(tensors.get('h.0.mlp.c_fc.weight')!.shape).toEqual([2, 8]);
  });

  it('loads into a Gpt2Config and canonical weights (Conv1D: already [in, out])', () => {
    const bytes = readFileSync(TINY_GPT2);
    // config.json equivalent, from the header: n_embd 2 (wte [21, 2]), 1 layer, vocab 21, n_positions 1024 (wpe),
    // n_inner 8 (c_fc [2, 8]); the head count is not in the tensors: 1 divides n_embd
    const config = {
      model_type: 'gpt2',
      n_embd: 2,
      n_layer: 1,
      n_head: 1,
      vocab_size: 21,
      n_positions: 1024,
      n_inner: 8,
    };
    const { config: c, weights: w } = hfModel(parseSafetensors(bytes), config);
    expect(c).toEqual({
      arch: 'gpt2',
      dim: 2,
      hiddenDim: 8,
      layers: 1,
      heads: 1,
      vocab: 21,
      maxSeq: 1024,
      normEps: 1e-5,
    });
    expect(w.names()).toHaveLength(2 + 12 + 2);
    // the data section starts after the 8-byte length and the header
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const data = 8 + Number(dv.getBigUint64(0, true));
    const f = (byte: number) => dv.getFloat32(data + byte, true);
    // c_attn.weight [2, 6] at data bytes 24..72: element [1, 4] = float 1·6 + 4
    expect(w.get('h.0.attn.c_attn.weight').shape).toEqual([2, 6]);
    expect(at(w.get('h.0.attn.c_attn.weight'), [1, 4])).toBe(f(24 + (6 + 4) * 4));
    // wte [21, 2] at 8504: row 20, column 1
    expect(at(w.get('wte'), [20, 1])).toBe(f(8504 + (20 * 2 + 1) * 4));
    expect(at(w.get('wpe'), [1023, 0])).toBe(f(312 + 1023 * 2 * 4));
    expect(at(w.get('h.0.mlp.c_proj.weight'), [7, 1])).toBe(f(232 + (7 * 2 + 1) * 4));
    expect(w.get('ln_f.weight').data[1]).toBe(f(304 + 4));
    // the wrong config is caught by shape
    expect(() => hfModel(parseSafetensors(bytes), { ...config, n_inner: 4 })).toThrow(/tensor 'h.0.mlp.c_fc.weight'/);
  });
});
