/**
 * Scaled dot-product attention (ONNX Attention-23/24 semantics) and rotary position embedding (ONNX
 * RotaryEmbedding-23). Both are opaque to the fusion pass: codegen lowers them through dedicated schedule templates.
 */
import { isFloat, isInteger, type DType } from '../dtype.js';
import { registerOp, type Attrs, type InferContext } from '../registry.js';
import { dimProduct, dimSum, type Dim, type Shape } from '../shape.js';
import { scratchTensor, type Tensor } from '../tensor.js';
import { tensorType } from '../types.js';
import { req } from './util.js';

type Fail = (message: string) => never;

/** Two dims that are not provably different (symbols may bind to anything). */
const compatible = (a: Dim, b: Dim): boolean => typeof a !== 'number' || typeof b !== 'number' || a === b;

/** `d / n` for a hidden size split into `n` heads; symbolic dims give a symbolic quotient. */
/**
 * Every row of an additive float mask (last axis = keys) has a key above -inf: where this holds, softmax(scores +
 * mask) is what the op computes (the op gives a fully masked row zero weights, a plain softmax NaN).
 */
export function everyRowAttends(t: Tensor): boolean {
  const n = t.shape.at(-1) ?? 1;
  if (n === 0) return false;
  for (let off = 0; off < t.data.length; off += n) {
    let ok = false;
    for (let j = 0; j < n && !ok; j++) ok = t.data[off + j]! > -Infinity;
    if (!ok) return false;
  }
  return true;
}

function splitHeads(d: Dim, n: number, what: string, fail: Fail): Dim {
  if (typeof d === 'string') return n === 1 ? d : `${d}/${n}`;
  if (d % n !== 0) fail(`${what} ${d} is not divisible by ${n} heads`);
  return d / n;
}

function checkFloat(ctx: InferContext, i: number, what: string): DType {
  const dt = req(ctx, i).dtype;
  if (!isFloat(dt)) ctx.fail(`${what} must be a float tensor, got ${dt}`);
  return dt;
}

export interface AttentionGeometry {
  rank: number;
  batch: Dim;
  qHeads: Dim;
  kvHeads: Dim;
  qSeq: Dim;
  kvSeq: Dim;
  /** Past length (0 without a cache) and past + new keys. */
  past: Dim;
  total: Dim;
  headSize: Dim;
  vHeadSize: Dim;
}

/** Head counts and lengths of an attention node, with located errors for every inconsistency. */
export function attentionGeometry(shapes: readonly (Shape | undefined)[], a: Attrs, fail: Fail): AttentionGeometry {
  const [q, k, v, mask, pastK, pastV, nonpad] = shapes;
  const rank = q!.length;
  if (rank !== 3 && rank !== 4) {
    fail(`Q must be 3-D [batch, seq, hidden] or 4-D [batch, heads, seq, head_size], got rank ${rank}`);
  }
  if (k!.length !== rank || v!.length !== rank) {
    fail(`Q, K and V must have the same rank, got ${rank}, ${k!.length} and ${v!.length}`);
  }
  const qn = a['q_num_heads'] as number | undefined;
  const kvn = a['kv_num_heads'] as number | undefined;
  if ((qn !== undefined && qn <= 0) || (kvn !== undefined && kvn <= 0)) fail('head counts must be positive');
  let qHeads: Dim, kvHeads: Dim, qSeq: Dim, kvSeq: Dim, headSize: Dim, kHeadSize: Dim, vHeadSize: Dim;
  if (rank === 3) {
    if (qn === undefined || kvn === undefined) fail('3-D Q/K/V need the q_num_heads and kv_num_heads attributes');
    qHeads = qn;
    kvHeads = kvn;
    qSeq = q![1]!;
    kvSeq = k![1]!;
    headSize = splitHeads(q![2]!, qn, 'Q hidden size', fail);
    kHeadSize = splitHeads(k![2]!, kvn, 'K hidden size', fail);
    vHeadSize = splitHeads(v![2]!, kvn, 'V hidden size', fail);
    if (!compatible(v![1]!, kvSeq)) fail(`K and V sequence lengths differ: ${kvSeq} vs ${v![1]}`);
  } else {
    [, qHeads, qSeq, headSize] = q! as Dim[];
    [, kvHeads, kvSeq, kHeadSize] = k! as Dim[];
    vHeadSize = v![3]!;
    if (!compatible(v![1]!, kvHeads)) fail(`K has ${kvHeads} heads but V has ${v![1]}`);
    if (!compatible(v![2]!, kvSeq)) fail(`K and V sequence lengths differ: ${kvSeq} vs ${v![2]}`);
    if (qn !== undefined && !compatible(qHeads!, qn)) fail(`q_num_heads ${qn} disagrees with Q's ${qHeads} heads`);
    if (kvn !== undefined && !compatible(kvHeads!, kvn))
      fail(`kv_num_heads ${kvn} disagrees with K's ${kvHeads} heads`);
  }
  const batch = q![0]!;
  if (!compatible(k![0]!, batch) || !compatible(v![0]!, batch)) {
    fail(`Q, K and V batch sizes differ: ${batch}, ${k![0]}, ${v![0]}`);
  }
  if (!compatible(headSize!, kHeadSize!)) fail(`Q head size ${headSize} differs from K head size ${kHeadSize}`);
  if (typeof qHeads! === 'number' && typeof kvHeads! === 'number' && (kvHeads === 0 || qHeads % kvHeads !== 0)) {
    fail(`q heads (${qHeads}) must be a multiple of kv heads (${kvHeads})`);
  }
  let past: Dim = 0;
  if ((pastK === undefined) !== (pastV === undefined)) fail('past_key and past_value must be given together');
  if (pastK && pastV) {
    if (pastK.length !== 4 || pastV.length !== 4)
      fail('past_key and past_value must be 4-D [batch, kv_heads, past, head_size]');
    const want: [Shape, Dim][] = [
      [pastK, headSize!],
      [pastV, vHeadSize!],
    ];
    for (const [p, hs] of want) {
      if (!compatible(p[0]!, batch) || !compatible(p[1]!, kvHeads!) || !compatible(p[3]!, hs)) {
        fail(`past cache [${p.join(',')}] does not match [${batch},${kvHeads},past,${hs}]`);
      }
    }
    if (!compatible(pastK[2]!, pastV[2]!)) fail(`past_key and past_value lengths differ: ${pastK[2]} vs ${pastV[2]}`);
    past = pastK[2]!;
  }
  const total = pastK ? dimSum([past, kvSeq!]) : kvSeq!;
  if (mask) {
    if (mask.length < 1 || mask.length > 4) fail(`attn_mask must have rank 1 to 4, got ${mask.length}`);
    const target = [batch, qHeads!, qSeq!];
    for (let i = 0; i < mask.length - 1; i++) {
      const m = mask[i]!;
      const t = target[i + 4 - mask.length]!;
      if (m !== 1 && !compatible(m, t)) {
        fail(`attn_mask [${mask.join(',')}] does not broadcast to [${batch},${qHeads},${qSeq},${total}]`);
      }
    }
    const last = mask[mask.length - 1]!;
    if (typeof last === 'number' && typeof total === 'number' && last > total) {
      fail(`attn_mask covers ${last} keys but there are only ${total}`);
    }
  }
  if (nonpad) {
    if (pastK) fail('nonpad_kv_seqlen cannot be combined with past_key / past_value');
    if (nonpad.length !== 1 || !compatible(nonpad[0]!, batch)) {
      fail(`nonpad_kv_seqlen must be 1-D [batch], got [${nonpad.join(',')}]`);
    }
  }
  return {
    rank,
    batch,
    qHeads: qHeads!,
    kvHeads: kvHeads!,
    qSeq: qSeq!,
    kvSeq: kvSeq!,
    past,
    total,
    headSize: headSize!,
    vHeadSize: vHeadSize!,
  };
}

/** Strides of element (b, h, s, d) of a 4-D [B, H, S, D] tensor or a 3-D [B, S, H*D] one. */
function headStrides(rank: number, h: number, s: number, d: number): [number, number, number, number] {
  return rank === 4 ? [h * s * d, s * d, d, 1] : [s * h * d, d, h * d, 1];
}

/** past ++ new along the sequence axis, as [B, H, past + new, D]. */
function appendCache(past: Tensor | undefined, cur: Tensor, rank: number, [b, h, p, s, d]: readonly number[]): Tensor {
  const out = scratchTensor(cur.dtype, [b, h, p + s, d]);
  const cs = headStrides(rank, h, s, d);
  let o = 0;
  for (let bi = 0; bi < b; bi++) {
    for (let hi = 0; hi < h; hi++) {
      if (past) {
        const src = (bi * h + hi) * p * d;
        out.data.set(past.data.subarray(src, src + p * d), o);
        o += p * d;
      }
      for (let si = 0; si < s; si++) {
        const src = bi * cs[0] + hi * cs[1] + si * cs[2];
        for (let di = 0; di < d; di++) out.data[o++] = cur.data[src + di]!;
      }
    }
  }
  return out;
}

registerOp({
  name: 'attention',
  doc:
    'softmax(softcap(scale * Q K^T) + bias) V with ONNX Attention semantics: 3-D [batch, seq, heads*size] (with ' +
    'q_num_heads / kv_num_heads) or 4-D [batch, heads, seq, size] inputs; GQA when kv heads divide q heads; bias from ' +
    'attn_mask (bool: true attends; float: added; last dim shorter than the keys is padded as masked), is_causal ' +
    '(queries aligned after past_key, or to nonpad_kv_seqlen[b]) and nonpad_kv_seqlen; past_key/past_value are ' +
    'prepended to K/V (outputs present_key/present_value). qk_matmul_output_mode picks output 3: 0 scaled QK, ' +
    '1 after softcap, 2 after adding the bias, 3 after softmax. A query whose keys are all masked gets zero weights. ' +
    'mask_fill (kiln; needs a bool attn_mask): the logit of a key attn_mask masks is this finite value instead of ' +
    '-inf — exporters write masking as Where(mask, scores, -10000), which this computes exactly.',
  inputs: [
    { name: 'q' },
    { name: 'k' },
    { name: 'v' },
    { name: 'attn_mask', optional: true },
    { name: 'past_key', optional: true },
    { name: 'past_value', optional: true },
    { name: 'nonpad_kv_seqlen', optional: true },
  ],
  outputs: [{ name: 'y' }, { name: 'present_key' }, { name: 'present_value' }, { name: 'qk_matmul_output' }],
  attrs: {
    is_causal: { kind: 'bool', default: false },
    scale: { kind: 'float', optional: true },
    softcap: { kind: 'float', default: 0 },
    q_num_heads: { kind: 'int', optional: true },
    kv_num_heads: { kind: 'int', optional: true },
    qk_matmul_output_mode: { kind: 'int', default: 0 },
    // The reference computes in float64 whatever the precision; the attribute tells backends what to use.
    softmax_precision: { kind: 'dtype', optional: true },
    mask_fill: { kind: 'float', optional: true },
  },
  fusion: 'opaque',
  infer(ctx) {
    const dt = checkFloat(ctx, 0, 'Q');
    if (checkFloat(ctx, 1, 'K') !== dt) ctx.fail(`K has dtype ${req(ctx, 1).dtype}, Q has ${dt}`);
    const vdt = checkFloat(ctx, 2, 'V');
    const [mask, pk, pv, nonpad] = [3, 4, 5, 6].map((i) => ctx.inputs[i]);
    if (mask && mask.dtype !== 'bool' && !isFloat(mask.dtype))
      ctx.fail(`attn_mask must be bool or float, got ${mask.dtype}`);
    if (pk && pk.dtype !== dt) ctx.fail(`past_key has dtype ${pk.dtype}, K has ${dt}`);
    if (pv && pv.dtype !== vdt) ctx.fail(`past_value has dtype ${pv.dtype}, V has ${vdt}`);
    if (nonpad && !isInteger(nonpad.dtype)) ctx.fail(`nonpad_kv_seqlen must be integer, got ${nonpad.dtype}`);
    const mode = ctx.attrs['qk_matmul_output_mode'] as number;
    if (!(mode >= 0 && mode <= 3)) ctx.fail(`qk_matmul_output_mode must be 0..3, got ${mode}`);
    if (!((ctx.attrs['softcap'] as number) >= 0)) ctx.fail('softcap must be >= 0');
    const fill = ctx.attrs['mask_fill'] as number | undefined;
    if (fill !== undefined && (mask?.dtype !== 'bool' || !Number.isFinite(fill))) {
      ctx.fail(
        `mask_fill needs a bool attn_mask and a finite value, got ${fill} with ${mask ? mask.dtype : 'no'} mask`,
      );
    }
    const g = attentionGeometry(
      ctx.inputs.map((t) => t?.shape),
      ctx.attrs,
      ctx.fail,
    );
    const y =
      g.rank === 4 ? [g.batch, g.qHeads, g.qSeq, g.vHeadSize] : [g.batch, g.qSeq, dimProduct([g.qHeads, g.vHeadSize])];
    return [
      tensorType(dt, y),
      tensorType(dt, [g.batch, g.kvHeads, g.total, g.headSize]),
      tensorType(vdt, [g.batch, g.kvHeads, g.total, g.vHeadSize]),
      tensorType(dt, [g.batch, g.qHeads, g.qSeq, g.total]),
    ];
  },
  reference(inputs, a, ctx) {
    const [q, k, v, mask, pastK, pastV, nonpad] = inputs;
    const g = attentionGeometry(
      inputs.map((t) => t?.shape),
      a,
      ctx.fail,
    );
    const [B, Hq, Hkv, S, Tk, P, T, D, Dv] = [
      g.batch,
      g.qHeads,
      g.kvHeads,
      g.qSeq,
      g.kvSeq,
      g.past,
      g.total,
      g.headSize,
      g.vHeadSize,
    ] as number[];
    const presentK = appendCache(pastK, k!, g.rank, [B, Hkv, P, Tk, D]);
    const presentV = appendCache(pastV, v!, g.rank, [B, Hkv, P, Tk, Dv]);
    const qs = headStrides(g.rank, Hq, S, D);
    const group = Hq / Hkv;
    const scale = (a['scale'] as number | undefined) ?? (D > 0 ? 1 / Math.sqrt(D) : 1);
    const softcap = a['softcap'] as number;
    const causal = a['is_causal'] as boolean;
    const mode = a['qk_matmul_output_mode'] as number;
    const fill = a['mask_fill'] as number | undefined;

    // The mask viewed as [B, Hq, S, maskLen] with broadcast (stride 0) dims.
    const maskStrides = [0, 0, 0, 0];
    let maskLen = 0;
    if (mask) {
      const ms = [...new Array<number>(4 - mask.shape.length).fill(1), ...mask.shape];
      maskLen = ms[3]!;
      const target = [B, Hq, S];
      let acc = 1;
      for (let i = 3; i >= 0; i--) {
        if (i < 3 && ms[i] !== 1 && ms[i] !== target[i]) {
          ctx.fail(`attn_mask [${mask.shape.join(',')}] does not broadcast to [${B},${Hq},${S},${T}]`);
        }
        maskStrides[i] = ms[i] === 1 && i < 3 ? 0 : acc;
        acc *= ms[i]!;
      }
    }
    const valid = Array.from({ length: B }, (_, b) => (nonpad ? nonpad.data[b]! : T));

    const y = scratchTensor(q!.dtype, g.rank === 4 ? [B, Hq, S, Dv] : [B, S, Hq * Dv]);
    const ys = headStrides(g.rank, Hq, S, Dv);
    const qkOut = scratchTensor(q!.dtype, [B, Hq, S, T]);
    const bias = new Float64Array(T);
    const logits = new Float64Array(T);
    for (let b = 0; b < B; b++) {
      // Causal alignment: after the past cache, or (external cache) so the last query sees the last valid key.
      const offset = pastK ? P : nonpad ? valid[b]! - S : 0;
      for (let h = 0; h < Hq; h++) {
        const kvh = Math.floor(h / group);
        const kBase = (b * Hkv + kvh) * T * D;
        const vBase = (b * Hkv + kvh) * T * Dv;
        for (let i = 0; i < S; i++) {
          const qBase = b * qs[0] + h * qs[1] + i * qs[2];
          const mBase = b * maskStrides[0]! + h * maskStrides[1]! + i * maskStrides[2]!;
          const oBase = ((b * Hq + h) * S + i) * T;
          let maxBias = -Infinity;
          for (let j = 0; j < T; j++) {
            let bj = 0;
            let filled = false; // mask_fill: a key the mask masks has the fill as its logit
            if (mask) {
              const m = j < maskLen ? mask.data[mBase + j * maskStrides[3]!]! : undefined;
              if (fill !== undefined) filled = m === undefined || m === 0;
              else if (m === undefined) bj = -Infinity;
              else bj = mask.dtype === 'bool' ? (m !== 0 ? 0 : -Infinity) : m;
            }
            if (causal && j > i + offset) bj += -Infinity;
            if (nonpad && j >= valid[b]!) bj += -Infinity;
            bias[j] = bj;
            if (bj > maxBias || Number.isNaN(bj)) maxBias = bj;
            let dot = 0;
            for (let d = 0; d < D; d++) dot += q!.data[qBase + d]! * presentK.data[kBase + j * D + d]!;
            const raw = scale * dot;
            const capped = softcap > 0 ? softcap * Math.tanh(raw / softcap) : raw;
            logits[j] = (filled ? fill! : capped) + bj;
            qkOut.data[oBase + j] = mode === 0 ? raw : mode === 1 ? capped : logits[j]!;
          }
          // softmax; a row with no attendable key (all bias -inf) gets zero weights, so its output is 0
          const allMasked = maxBias === -Infinity;
          let max = -Infinity;
          for (let j = 0; j < T; j++) max = Number.isNaN(logits[j]!) || logits[j]! > max ? logits[j]! : max;
          let sum = 0;
          for (let j = 0; j < T; j++) {
            const e = allMasked ? 0 : Math.exp(logits[j]! - max);
            logits[j] = e;
            sum += e;
          }
          const yBase = b * ys[0] + h * ys[1] + i * ys[2];
          for (let d = 0; d < Dv; d++) y.data[yBase + d] = 0;
          for (let j = 0; j < T; j++) {
            const p = allMasked ? 0 : logits[j]! / sum;
            if (mode === 3) qkOut.data[oBase + j] = p;
            if (p === 0) continue;
            for (let d = 0; d < Dv; d++) y.data[yBase + d] += p * presentV.data[vBase + j * Dv + d]!;
          }
        }
      }
    }
    return [y, presentK, presentV, qkOut];
  },
});

interface RotaryGeometry {
  rank: number;
  batch: Dim;
  heads: Dim;
  seq: Dim;
  headSize: Dim;
  /** Rotated leading part of each head. */
  rotary: Dim;
}

function rotaryGeometry(shapes: readonly (Shape | undefined)[], a: Attrs, fail: Fail): RotaryGeometry {
  const [x, cos, sin, pos] = shapes;
  const rank = x!.length;
  const numHeads = a['num_heads'] as number;
  const rotDim = a['rotary_embedding_dim'] as number;
  if (numHeads < 0 || rotDim < 0) fail('num_heads and rotary_embedding_dim must be >= 0');
  let heads: Dim, seq: Dim, headSize: Dim;
  if (rank === 4) {
    [, heads, seq, headSize] = x! as Dim[];
    if (numHeads > 0 && !compatible(heads!, numHeads)) fail(`num_heads ${numHeads} disagrees with x's ${heads} heads`);
  } else if (rank === 3) {
    if (numHeads === 0) fail('3-D x [batch, seq, hidden] needs the num_heads attribute');
    heads = numHeads;
    seq = x![1]!;
    headSize = splitHeads(x![2]!, numHeads, 'hidden size', fail);
  } else {
    return fail(`x must be 3-D [batch, seq, hidden] or 4-D [batch, heads, seq, head_size], got rank ${rank}`);
  }
  const batch = x![0]!;
  const rotary = rotDim === 0 ? headSize! : rotDim;
  if (typeof rotary === 'number') {
    if (rotary % 2 !== 0) fail(`rotary_embedding_dim ${rotary} must be even`);
    if (typeof headSize! === 'number' && rotary > headSize) {
      fail(`rotary_embedding_dim ${rotary} exceeds the head size ${headSize}`);
    }
  }
  const half: Dim = typeof rotary === 'number' ? rotary / 2 : `${rotary}/2`;
  if (cos!.length !== sin!.length || !cos!.every((d, i) => compatible(d, sin![i]!))) {
    fail(`cos_cache [${cos!.join(',')}] and sin_cache [${sin!.join(',')}] differ`);
  }
  if (pos) {
    if (cos!.length !== 2) fail(`with position_ids the caches must be 2-D [max_position, ${half}]`);
    if (pos.length !== 2) fail(`position_ids must be 2-D [batch, seq], got rank ${pos.length}`);
    if ((pos[0] !== 1 && !compatible(pos[0]!, batch)) || (pos[1] !== 1 && !compatible(pos[1]!, seq!))) {
      fail(`position_ids [${pos.join(',')}] does not match [${batch},${seq}]`);
    }
  } else {
    if (cos!.length !== 3) fail(`without position_ids the caches must be 3-D [batch, seq, ${half}]`);
    if ((cos![0] !== 1 && !compatible(cos![0]!, batch)) || (cos![1] !== 1 && !compatible(cos![1]!, seq!))) {
      fail(`cos_cache [${cos!.join(',')}] does not match [${batch},${seq},${half}]`);
    }
  }
  if (!compatible(cos![cos!.length - 1]!, half)) {
    fail(`cache last dim ${cos![cos!.length - 1]} must be rotary_dim / 2 = ${half}`);
  }
  return { rank, batch, heads: heads!, seq: seq!, headSize: headSize!, rotary };
}

registerOp({
  name: 'rotary_embedding',
  doc:
    'rotary position embedding (ONNX RotaryEmbedding): rotates the first rotary_embedding_dim (0 = all) features of ' +
    'each head by angles given as cos/sin caches, [max_pos, dim/2] indexed by position_ids [batch, seq] or ' +
    '[batch, seq, dim/2] without them; pairs are (i, i + dim/2), or (2i, 2i+1) when interleaved. ' +
    'x is 4-D [batch, heads, seq, head_size] or 3-D [batch, seq, hidden] with num_heads.',
  inputs: [{ name: 'x' }, { name: 'cos_cache' }, { name: 'sin_cache' }, { name: 'position_ids', optional: true }],
  outputs: [{ name: 'y' }],
  attrs: {
    interleaved: { kind: 'bool', default: false },
    rotary_embedding_dim: { kind: 'int', default: 0 },
    num_heads: { kind: 'int', default: 0 },
  },
  fusion: 'opaque',
  infer(ctx) {
    const x = req(ctx, 0);
    const dt = checkFloat(ctx, 0, 'x');
    for (const i of [1, 2]) if (req(ctx, i).dtype !== dt) ctx.fail(`cos/sin caches must have x's dtype ${dt}`);
    const pos = ctx.inputs[3];
    if (pos && !isInteger(pos.dtype)) ctx.fail(`position_ids must be integer, got ${pos.dtype}`);
    rotaryGeometry(
      ctx.inputs.map((t) => t?.shape),
      ctx.attrs,
      ctx.fail,
    );
    return [tensorType(dt, x.shape)];
  },
  reference([x, cos, sin, pos], a, ctx) {
    const g = rotaryGeometry([x!.shape, cos!.shape, sin!.shape, pos?.shape], a, ctx.fail);
    const [B, H, S, Dh, R] = [g.batch, g.heads, g.seq, g.headSize, g.rotary] as number[];
    const half = R / 2;
    const interleaved = a['interleaved'] as boolean;
    const xs = headStrides(g.rank, H, S, Dh);
    const y = scratchTensor(x!.dtype, x!.shape, x!.data);
    for (let b = 0; b < B; b++) {
      for (let s = 0; s < S; s++) {
        let row: number;
        if (pos) {
          const p = pos.data[(pos.shape[0] === 1 ? 0 : b) * pos.shape[1]! + (pos.shape[1] === 1 ? 0 : s)]!;
          if (!(p >= 0 && p < cos!.shape[0]!)) ctx.fail(`position id ${p} outside the cache of ${cos!.shape[0]}`);
          row = p * half;
        } else {
          row = ((cos!.shape[0] === 1 ? 0 : b) * cos!.shape[1]! + (cos!.shape[1] === 1 ? 0 : s)) * half;
        }
        for (let h = 0; h < H; h++) {
          const base = b * xs[0] + h * xs[1] + s * xs[2];
          for (let i = 0; i < half; i++) {
            const [i1, i2] = interleaved ? [base + 2 * i, base + 2 * i + 1] : [base + i, base + i + half];
            const c = cos!.data[row + i]!;
            const sn = sin!.data[row + i]!;
            const x1 = x!.data[i1]!;
            const x2 = x!.data[i2]!;
            y.data[i1] = c * x1 - sn * x2;
            y.data[i2] = sn * x1 + c * x2;
          }
        }
      }
    }
    return [y];
  },
});
