import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { KilnError, ParseError, UnsupportedError } from '../../ir/errors.js';
import { at } from '../../ir/tensor.js';
import { loadLlama2c } from '../../src/frontends/llama2c.js';
import { SHARED } from '../helpers/paths.js';
import { fileProbe, requireTool } from '../helpers/tools.js';

const STORIES = resolve(SHARED, 'models/stories260K.bin');

/** A legacy checkpoint whose every f32 weight is its own index in the weight area (exact up to 2^24). */
function synthetic(h: number[], floats: number): Uint8Array {
  const buf = new Uint8Array(28 + floats * 4);
  const dv = new DataView(buf.buffer);
  h.forEach((v, i) => dv.setInt32(i * 4, v, true));
  for (let i = 0; i < floats; i++) dv.setFloat32(28 + i * 4, i, true);
  return buf;
}

describe('llama2.c checkpoints (synthetic)', () => {
  // dim 8, hidden 3, 1 layer, 2 heads (hd 4), 1 kv head (kv dim 4), vocab 5 with a separate classifier, seq 2
  const [dim, hidden, vocab, seq] = [8, 3, 5, 2];
  const off = {
    emb: 0,
    rmsAtt: 40,
    wq: 48,
    wk: 48 + 64,
    wv: 48 + 64 + 32,
    wo: 48 + 64 + 64,
    rmsFfn: 48 + 64 + 64 + 64,
    w1: 248,
    w2: 248 + 24,
    w3: 248 + 48,
    rmsFinal: 248 + 72,
    rope: 328,
    wcls: 328 + 2 * 2 * 2,
  };
  const total = off.wcls + vocab * dim; // 336 + 40
  const file = synthetic([dim, hidden, 1, 2, 1, -vocab, seq], total);

  it('maps the header to a LlamaConfig (negative vocab = separate classifier)', () => {
    const { config, version } = loadLlama2c(file);
    expect(version).toBe(0);
    expect(config).toEqual({
      arch: 'llama',
      dim,
      hiddenDim: hidden,
      layers: 1,
      heads: 2,
      kvHeads: 1,
      vocab,
      maxSeq: seq,
      normEps: 1e-5,
      ropeTheta: 10000,
      tiedHead: false,
    });
  });

  it('transposes linear weights to [in, out] and moves Q/K rows from interleaved pairs to rotate-halves', () => {
    const { weights: w } = loadLlama2c(file);
    expect(w.get('tok_embeddings').shape).toEqual([5, 8]);
    expect(at(w.get('tok_embeddings'), [2, 3])).toBe(2 * 8 + 3);
    expect([...w.get('layers.0.attention_norm').data]).toEqual([40, 41, 42, 43, 44, 45, 46, 47]);
    const wq = w.get('layers.0.wq');
    expect(wq.shape).toEqual([8, 8]);
    // per head of 4: source rows (0,1,2,3) are pairs (0,1) (2,3) interleaved → canonical columns (0,2,1,3)
    // so canonical column 1 holds source row 2, column 2 holds source row 1, column 6 holds row 5
    for (let k = 0; k < 8; k++) {
      expect(at(wq, [k, 0])).toBe(off.wq + 0 * 8 + k);
      expect(at(wq, [k, 1])).toBe(off.wq + 2 * 8 + k);
      expect(at(wq, [k, 2])).toBe(off.wq + 1 * 8 + k);
      expect(at(wq, [k, 3])).toBe(off.wq + 3 * 8 + k);
      expect(at(wq, [k, 5])).toBe(off.wq + 6 * 8 + k);
      expect(at(wq, [k, 6])).toBe(off.wq + 5 * 8 + k);
    }
    const wk = w.get('layers.0.wk');
    expect(wk.shape).toEqual([8, 4]);
    expect(at(wk, [3, 1])).toBe(off.wk + 2 * 8 + 3);
    expect(at(wk, [3, 2])).toBe(off.wk + 1 * 8 + 3);
    // V and O: plain transposes
    expect(at(w.get('layers.0.wv'), [5, 1])).toBe(off.wv + 1 * 8 + 5);
    expect(at(w.get('layers.0.wo'), [5, 1])).toBe(off.wo + 1 * 8 + 5);
    expect(w.get('layers.0.w1').shape).toEqual([8, 3]);
    expect(at(w.get('layers.0.w1'), [7, 2])).toBe(off.w1 + 2 * 8 + 7);
    expect(w.get('layers.0.w2').shape).toEqual([3, 8]);
    expect(at(w.get('layers.0.w2'), [2, 7])).toBe(off.w2 + 7 * 3 + 2);
    expect(at(w.get('layers.0.w3'), [0, 1])).toBe(off.w3 + 1 * 8 + 0);
    expect(w.get('layers.0.ffn_norm').data[0]).toBe(off.rmsFfn);
    expect(w.get('norm').data[7]).toBe(off.rmsFinal + 7);
    const out = w.get('output');
    expect(out.shape).toEqual([8, 5]);
    expect(at(out, [6, 4])).toBe(off.wcls + 4 * 8 + 6);
    expect(w.has('output')).toBe(true);
  });

  it('reads a version-1 ("ak42") fp32 checkpoint with norms first, and rejects version 2 with a typed error', () => {
    // dim 4, hidden 2, 1 layer, 1 head, 1 kv head, vocab 3 shared, seq 2: norms (4+4+4), emb 12, wq 16 …
    const floats = 4 + 4 + 4 + 12 + 16 + 16 + 16 + 16 + 8 + 8 + 8;
    const buf = new Uint8Array(256 + floats * 4);
    const dv = new DataView(buf.buffer);
    dv.setUint32(0, 0x616b3432, true);
    dv.setInt32(4, 1, true);
    [4, 2, 1, 1, 1, 3, 2].forEach((v, i) => dv.setInt32(8 + i * 4, v, true));
    buf[36] = 1;
    for (let i = 0; i < floats; i++) dv.setFloat32(256 + i * 4, i, true);
    const { config, weights: w, version } = loadLlama2c(buf);
    expect(version).toBe(1);
    expect(config.tiedHead).toBe(true);
    expect([...w.get('layers.0.attention_norm').data]).toEqual([0, 1, 2, 3]);
    expect([...w.get('layers.0.ffn_norm').data]).toEqual([4, 5, 6, 7]);
    expect([...w.get('norm').data]).toEqual([8, 9, 10, 11]);
    expect(at(w.get('tok_embeddings'), [1, 0])).toBe(16);
    // wq starts at 24; hd 4: canonical column 1 = source row 2
    expect(at(w.get('layers.0.wq'), [3, 1])).toBe(24 + 2 * 4 + 3);
    expect(w.has('output')).toBe(false);
    expect(() => w.get('output')).toThrow(KilnError);
    dv.setInt32(4, 2, true);
    expect(() => loadLlama2c(buf)).toThrow(UnsupportedError);
    dv.setInt32(4, 7, true);
    expect(() => loadLlama2c(buf)).toThrow(/unknown version 7/);
  });

  it('malformed headers and sizes are ParseErrors naming the problem', () => {
    expect(() => loadLlama2c(new Uint8Array(10))).toThrow(ParseError);
    expect(() => loadLlama2c(file.subarray(0, file.length - 4))).toThrow(/implies 1504 bytes/);
    const bad = (h: number[]) => () => loadLlama2c(synthetic(h, 16));
    expect(bad([0, 3, 1, 2, 1, 5, 2])).toThrow(/dim = 0/);
    expect(bad([8, 3, 1, 3, 1, 5, 2])).toThrow(/not a multiple of n_heads/);
    expect(bad([8, 3, 1, 2, 3, 5, 2])).toThrow(/not a multiple of n_kv_heads/);
    expect(bad([6, 3, 1, 2, 1, 5, 2])).toThrow(/head size 3 is odd/);
    expect(bad([2 ** 30, 3, 1, 2, 1, 5, 2])).toThrow(/out of range/);
    // absurd but individually valid dims: the size check fails before anything is allocated
    expect(bad([2 ** 24, 2 ** 24, 2 ** 24, 2, 1, 2 ** 24, 2 ** 24])).toThrow(ParseError);
  });
});

const noShared = await requireTool('../shared/models', fileProbe(STORIES, 'clone the shared data beside the repo'));
describe.skipIf(noShared)('stories260K.bin', () => {
  it('loads with the documented config and canonical shapes', () => {
    const { config, weights: w } = loadLlama2c(readFileSync(STORIES));
    expect(config).toEqual({
      arch: 'llama',
      dim: 64,
      hiddenDim: 172,
      layers: 5,
      heads: 8,
      kvHeads: 4,
      vocab: 512,
      maxSeq: 512,
      normEps: 1e-5,
      ropeTheta: 10000,
      tiedHead: true,
    });
    expect(w.names()).toHaveLength(1 + 5 * 9 + 1);
    expect(w.get('layers.4.wq').shape).toEqual([64, 64]);
    expect(w.get('layers.4.wk').shape).toEqual([64, 32]);
    expect(w.get('layers.4.wv').shape).toEqual([64, 32]);
    expect(w.get('layers.4.w1').shape).toEqual([64, 172]);
    expect(w.get('layers.4.w2').shape).toEqual([172, 64]);
    expect(w.has('output')).toBe(false);
  });

  it('values match the file read directly at the transposed / permuted positions', () => {
    const bytes = readFileSync(STORIES);
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const f = (floatIndex: number) => dv.getFloat32(28 + floatIndex * 4, true);
    const { weights: w } = loadLlama2c(bytes);
    // embedding row 300, column 17
    expect(at(w.get('tok_embeddings'), [300, 17])).toBe(f(300 * 64 + 17));
    // rms_att of layer 2 starts after the embedding (512·64) and two layers of 64
    expect(w.get('layers.2.attention_norm').data[5]).toBe(f(32768 + 2 * 64 + 5));
    const wq0 = 32768 + 5 * 64;
    // head size 8: source row 13 = head 1, pair 2, second of the pair → canonical column 8 + 4 + 2 = 14
    expect(at(w.get('layers.0.wq'), [9, 14])).toBe(f(wq0 + 13 * 64 + 9));
    // source row 2 (head 0, pair 1, first) → column 1
    expect(at(w.get('layers.0.wq'), [0, 1])).toBe(f(wq0 + 2 * 64 + 0));
    // layer 1's wk: after all wq (5·64·64); source row 3 (pair 1, second) → column 4 + 1 = 5
    const wk0 = wq0 + 5 * 4096;
    expect(at(w.get('layers.1.wk'), [40, 5])).toBe(f(wk0 + 1 * 2048 + 3 * 64 + 40));
    // wv of layer 0: plain transpose
    const wv0 = wk0 + 5 * 2048;
    expect(at(w.get('layers.0.wv'), [63, 31])).toBe(f(wv0 + 31 * 64 + 63));
    // w2 of layer 3 ([dim, hidden] stored): canonical [hidden 100, dim 7] = stored row 7, column 100
    const wo0 = wv0 + 5 * 2048;
    const rmsFfn0 = wo0 + 5 * 4096;
    const w10 = rmsFfn0 + 5 * 64;
    const w20 = w10 + 5 * 172 * 64;
    expect(at(w.get('layers.3.w2'), [100, 7])).toBe(f(w20 + 3 * 172 * 64 + 7 * 172 + 100));
    const final = w20 + 2 * 5 * 172 * 64;
    expect(w.get('norm').data[63]).toBe(f(final + 63));
    // the values are a real trained model's: norms are not all zero or one
    expect(new Set(w.get('norm').data).size).toBeGreaterThan(10);
  });
});
