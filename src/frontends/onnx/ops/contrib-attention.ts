/**
 * ONNX Runtime's attention contrib ops (`com.microsoft`) as compositions around kiln's `attention` op:
 * Attention (packed input projection, mask_index, past [2, B, N, P, H]), MultiHeadAttention (separate / packed QKV,
 * packed KV, BNSH cross-attention keys, bias, key-padding and attention-bias masks, past / present) and
 * GroupQueryAttention (seqlens_k / total_sequence_length, KV cache placed at each batch's past length, rotary, local
 * window, softcap, smooth_softmax / head_sink, packed QKV). Masks are built in the graph as additive float masks with
 * ONNX Runtime's mask_filter_value, so the composition is exact (a padded key adds the filter value, as ONNX
 * Runtime's kernels do, not -inf). Where ONNX Runtime's CPU kernel departs from the schema's prose, the converters
 * follow the kernel (the conformance goldens come from it): MultiHeadAttention ignores past_key / past_value without
 * present outputs, attends BNSH keys as given, and applies unidirectional only to more than one query.
 * Not supported (typed errors): the qk outputs, Attention do_rotary / past_present_share_buffer /
 * past_sequence_length / 4-D Megatron masks, MultiHeadAttention past_sequence_length / cache_indirection.
 * GroupQueryAttention's present length is past buffer + new tokens (rows past the valid ones zero), or the past
 * buffer when total_sequence_length is a constant no larger (shared buffer: other rows kept); a run-time
 * total_sequence_length does not change output shapes.
 */
import type { DType } from '../../../../ir/dtype.js';
import type { Value } from '../../../../ir/graph.js';
import type { Dim } from '../../../../ir/shape.js';
import { onnxOp, type ConvertContext } from '../convert.js';
import { MS, floatInput, scalar } from './contrib.js';

const INTS: readonly DType[] = ['i32', 'i64'];

/** Dim `axis` of `v` as an i64 scalar value (a constant when static). */
function dimOf(ctx: ConvertContext, v: Value, axis: number): Value {
  const d = v.type.shape[axis]!;
  if (typeof d === 'number') return scalar(ctx, 'i64', d);
  return ctx.emit('reshape', [ctx.emit('shape', [v], { start: axis, end: axis + 1 }), ctx.constant('i64', [], [0])]);
}

/** [0, n) as i64 [n]: a constant for a static length. */
function iota(ctx: ConvertContext, n: Value | number): Value {
  if (typeof n === 'number') {
    return ctx.constant(
      'i64',
      Array.from({ length: n }, (_, i) => i),
      [n],
    );
  }
  const c = n.data;
  if (c && c.shape.length === 0) return iota(ctx, c.data[0]!);
  return ctx.emit('range', [scalar(ctx, 'i64', 0), n, scalar(ctx, 'i64', 1)]);
}

const addI = (ctx: ConvertContext, a: Value, b: Value): Value => {
  if (a.data && b.data && a.data.shape.length === 0 && b.data.shape.length === 0) {
    return scalar(ctx, 'i64', a.data.data[0]! + b.data.data[0]!);
  }
  return ctx.emit('add', [a, b]);
};

const i64 = (ctx: ConvertContext, v: Value): Value =>
  v.type.dtype === 'i64' ? v : ctx.emit('cast', [v], { to: 'i64' });

const reshape = (ctx: ConvertContext, v: Value, shape: readonly number[]): Value =>
  ctx.emit('reshape', [v, ctx.constant('i64', shape, [shape.length])]);

/** [B, S, N*H] → [B, N, S, H]. */
const toHeads = (ctx: ConvertContext, v: Value, n: number, h: number): Value =>
  ctx.emit('transpose', [reshape(ctx, v, [0, 0, n, h])], { perm: [0, 2, 1, 3] });

/** [B, N, S, H] → [B, S, N*H]. */
const fromHeads = (ctx: ConvertContext, v: Value): Value =>
  reshape(ctx, ctx.emit('transpose', [v], { perm: [0, 2, 1, 3] }), [0, 0, -1]);

/** The first element of `x` along `axis` (size 1 there). */
function firstOf(ctx: ConvertContext, x: Value, axis: number): Value {
  const c = (xs: number[]) => ctx.constant('i64', xs, [xs.length]);
  return ctx.emit('slice', [x, c([0]), c([1]), c([axis])]);
}

/** Zeros of `x`'s shape and dtype (`zero` a scalar of that dtype), whatever x holds (no 0 * inf). */
const zerosLike = (ctx: ConvertContext, x: Value, zero: Value): Value =>
  ctx.emit('where', [ctx.constant('bool', [0], []), x, zero]);

/** A static last-dim size, failing with a located error otherwise. */
function staticDim(ctx: ConvertContext, v: Value, axis: number, what: string): number {
  const d = v.type.shape.at(axis);
  if (typeof d !== 'number') return ctx.unsupported(`${what} must have a static size, got ${String(d)}`);
  return d;
}

function heads(ctx: ConvertContext, name: string): number {
  if (!ctx.hasAttr(name)) ctx.fail(`missing attribute '${name}'`);
  const n = ctx.int(name);
  if (n <= 0) ctx.fail(`${name} must be positive, got ${n}`);
  return n;
}

function divide(ctx: ConvertContext, d: number, n: number, what: string): number {
  if (d % n !== 0) ctx.fail(`${what} ${d} is not divisible by ${n} heads`);
  return d / n;
}

/**
 * ONNX Runtime's mask_index / key_padding_mask (int) as an additive float mask of `dtype` that broadcasts to
 * [B, N, S, T]: 0 where a key attends, `filter` where it is masked. Forms: [B] key end positions, [2B] end and start
 * positions (Attention), [B, T] raw 0/1, [B, S, T] raw 0/1. `total` is T as a value.
 */
function paddingMask(
  ctx: ConvertContext,
  m: Value,
  batch: Dim,
  total: Value,
  dtype: DType,
  filter: number,
  startPositions: boolean,
): Value {
  if (!INTS.includes(m.type.dtype)) ctx.fail(`the mask (input '${m.name}') must be int32, got ${m.type.dtype}`);
  const s = m.type.shape;
  const zero = scalar(ctx, dtype, 0);
  const neg = scalar(ctx, dtype, filter);
  const mi = i64(ctx, m);
  if (s.length === 1) {
    const j = reshape(ctx, iota(ctx, total), [1, -1]);
    const twice = typeof batch === 'number' && s[0] === 2 * batch && batch > 0;
    if (twice && !startPositions) ctx.fail(`a [2 * batch] mask is only an Attention mask_index form`);
    if (!twice && typeof batch === 'number' && typeof s[0] === 'number' && s[0] !== batch) {
      ctx.fail(`1-D mask [${s[0]}] must be [batch = ${batch}]${startPositions ? ' or [2 * batch]' : ''}`);
    }
    let ends = mi;
    let starts: Value | undefined;
    if (twice) {
      const parts = ctx.emitN('split', [mi], { axis: 0, split: [batch, batch] }, 2);
      ends = parts[0]!;
      starts = parts[1]!;
    }
    let ok = ctx.emit('less', [j, reshape(ctx, ends, [-1, 1])]);
    if (starts) ok = ctx.emit('and', [ok, ctx.emit('greater_equal', [j, reshape(ctx, starts, [-1, 1])])]);
    return reshape(ctx, ctx.emit('where', [ok, zero, neg]), [0, 1, 1, -1]);
  }
  if (s.length !== 2 && s.length !== 3) {
    return ctx.unsupported(`a mask of rank ${s.length} ([${s.join(',')}]) is not supported (1-D, 2-D or 3-D)`);
  }
  if (typeof batch === 'number' && typeof s[0] === 'number' && s[0] !== batch) {
    ctx.fail(`mask [${s.join(',')}] does not match batch ${batch}`);
  }
  const t = total.data?.shape.length === 0 ? total.data.data[0] : undefined;
  const last = s.at(-1);
  if (t !== undefined && typeof last === 'number' && last !== t) {
    ctx.fail(`mask [${s.join(',')}] must cover all ${t} keys (past + new)`);
  }
  const f = ctx.emit('where', [ctx.emit('greater', [mi, scalar(ctx, 'i64', 0)]), zero, neg]);
  return ctx.emit('unsqueeze', [f], { axes: s.length === 2 ? [1, 2] : [1] });
}

/** attention_bias [B|1, N|1, S, T] checked for rank and dtype. */
function attentionBias(ctx: ConvertContext, i: number, dtype: DType): Value | null {
  const b = ctx.input(i);
  if (!b) return null;
  if (b.type.dtype !== dtype) ctx.fail(`attention_bias has dtype ${b.type.dtype}, expected ${dtype}`);
  if (b.type.shape.length !== 4)
    ctx.fail(`attention_bias must be 4-D [batch, heads, seq, total], got [${b.type.shape.join(',')}]`);
  return b;
}

const combine = (ctx: ConvertContext, a: Value | null, b: Value | null): Value | null =>
  a && b ? ctx.emit('add', [a, b]) : (a ?? b);

function scaleAttr(ctx: ConvertContext, attrs: Record<string, number | boolean>): void {
  const s = ctx.float('scale', 0);
  if (s !== 0) attrs['scale'] = s;
}

// ---- MultiHeadAttention ----

onnxOp(
  'MultiHeadAttention',
  (ctx: ConvertContext) => {
    const n = heads(ctx, 'num_heads');
    const query = floatInput(ctx, 0, 'query', [3, 5]);
    const dt = query.type.dtype;
    if (ctx.input(8) || ctx.input(9)) {
      ctx.unsupported('MultiHeadAttention past_sequence_length / cache_indirection (beam search) are not supported');
    }
    if ((ctx.node.outputs[3] ?? '') !== '') ctx.unsupported('MultiHeadAttention output qk is not supported');
    const key = ctx.input(1);
    const value = ctx.input(2);
    let q: Value;
    let k: Value;
    let v: Value;
    let bnshKV = false;
    if (query.type.shape.length === 5) {
      // packed QKV [B, S, N, 3, H]
      if (key || value) ctx.fail('packed QKV query [B, S, N, 3, H] takes no key / value');
      const [, , qn, three] = query.type.shape;
      if (qn !== n || three !== 3)
        ctx.fail(`packed QKV must be [batch, seq, ${n}, 3, head_size], got [${query.type.shape.join(',')}]`);
      const [pq, pk, pv] = ctx.emitN('split', [query], { axis: 3, split: [1, 1, 1] }, 3);
      [q, k, v] = [pq!, pk!, pv!].map((t) => reshape(ctx, t, [0, 0, -1]));
    } else {
      q = query;
      const kk = key ?? ctx.fail('key is required unless query is packed QKV');
      if (kk.type.dtype !== dt) ctx.fail(`key has dtype ${kk.type.dtype}, query has ${dt}`);
      const kr = kk.type.shape.length;
      if (kr === 5) {
        // packed KV [B, L, N, 2, H]
        if (value) ctx.fail('packed KV key [B, L, N, 2, H] takes no value');
        const [, , kn, two] = kk.type.shape;
        if (kn !== n || two !== 2)
          ctx.fail(`packed KV must be [batch, kv_seq, ${n}, 2, head_size], got [${kk.type.shape.join(',')}]`);
        const [pk, pv] = ctx.emitN('split', [kk], { axis: 3, split: [1, 1] }, 2);
        [k, v] = [pk!, pv!].map((t) => reshape(ctx, t, [0, 0, -1]));
      } else {
        const vv = value ?? ctx.fail('value is required unless key is packed KV');
        if (vv.type.dtype !== dt) ctx.fail(`value has dtype ${vv.type.dtype}, query has ${dt}`);
        if (vv.type.shape.length !== kr) ctx.fail(`key and value ranks differ: ${kr} vs ${vv.type.shape.length}`);
        if (kr === 4) {
          // BNSH keys / values (cross-attention): back to [B, L, N*H]
          if (kk.type.shape[1] !== n && typeof kk.type.shape[1] === 'number') {
            ctx.fail(`key [${kk.type.shape.join(',')}] must be [batch, ${n}, kv_seq, head_size]`);
          }
          bnshKV = true;
          [k, v] = [kk, vv].map((t) => fromHeads(ctx, t));
        } else if (kr === 3) {
          [k, v] = [kk, vv];
        } else return ctx.fail(`key must be 3-D, 4-D or 5-D, got [${kk.type.shape.join(',')}]`);
      }
    }
    const bias = ctx.input(3);
    if (bias) {
      if (bnshKV) ctx.unsupported('MultiHeadAttention bias with BNSH key / value is not supported');
      if (bias.type.dtype !== dt) ctx.fail(`bias has dtype ${bias.type.dtype}, query has ${dt}`);
      const sizes = [q, k, v].map((t) => staticDim(ctx, t, -1, 'the hidden size'));
      const total = sizes.reduce((a, b) => a + b, 0);
      if (bias.type.shape.length !== 1 || bias.type.shape[0] !== total) {
        ctx.fail(`bias must be 1-D [${sizes.join(' + ')}], got [${bias.type.shape.join(',')}]`);
      }
      const [bq, bk, bv] = ctx.emitN('split', [bias], { axis: 0, split: sizes }, 3);
      q = ctx.emit('add', [q, bq!]);
      k = ctx.emit('add', [k, bk!]);
      v = ctx.emit('add', [v, bv!]);
    }
    if (!ctx.input(6) !== !ctx.input(7)) ctx.fail('past_key and past_value must be given together');
    // ONNX Runtime's kernel reads past_key / past_value only when the node has present outputs to write; without
    // them the past is ignored (total length = kv length) and an attention_bias is read over the first kv keys.
    // BNSH key / value are the whole cross-attention keys: attended as given, the past only prepended to present.
    const want = (ctx.node.outputs[1] ?? '') !== '' || (ctx.node.outputs[2] ?? '') !== '' ? 3 : 1;
    const pastK = want === 3 && !bnshKV ? ctx.input(6) : null;
    const pastV = want === 3 && !bnshKV ? ctx.input(7) : null;
    const total = pastK ? addI(ctx, dimOf(ctx, pastK, 2), dimOf(ctx, k, 1)) : dimOf(ctx, k, 1);
    const kpm = ctx.input(4);
    const filter = ctx.float('mask_filter_value', -10000);
    let ab = attentionBias(ctx, 5, dt);
    const kvLen = k.type.shape[1];
    if (ab && !pastK && ctx.input(6) && typeof kvLen === 'number' && (ab.type.shape[3] as number) > kvLen) {
      const c = (xs: number[]) => ctx.constant('i64', xs, [xs.length]);
      ab = ctx.emit('slice', [ab, c([0]), c([kvLen]), c([3])]);
    }
    const mask = combine(ctx, kpm ? paddingMask(ctx, kpm, query.type.shape[0]!, total, dt, filter, false) : null, ab);
    const attrs: Record<string, number | boolean> = {
      q_num_heads: n,
      kv_num_heads: n,
      // ONNX Runtime applies unidirectional only to more than one query (a single query sees every key)
      is_causal: ctx.int('unidirectional', 0) !== 0 && q.type.shape[1] !== 1,
    };
    scaleAttr(ctx, attrs);
    if (bnshKV) {
      const y = ctx.emit('attention', [q, k, v, mask], attrs);
      if (want === 1) return [y];
      const present = (past: Value | null, cur: Value) =>
        past ? ctx.emit('concat', [past, cur], { axis: 2 }) : ctx.emit('identity', [cur]);
      return [y, present(ctx.input(6), key!), present(ctx.input(7), value!)];
    }
    return ctx.emitN('attention', [q, k, v, mask, pastK, pastV], attrs, want);
  },
  1,
  MS,
);

// ---- Attention ----

onnxOp(
  'Attention',
  (ctx: ConvertContext) => {
    const n = heads(ctx, 'num_heads');
    const x = floatInput(ctx, 0, 'input', [3]);
    const dt = x.type.dtype;
    const w = floatInput(ctx, 1, 'weights', [2]);
    if (w.type.dtype !== dt) ctx.fail(`weights have dtype ${w.type.dtype}, input has ${dt}`);
    if (ctx.int('do_rotary', 0) !== 0) ctx.unsupported('Attention do_rotary is not supported');
    if (ctx.int('past_present_share_buffer', 0) !== 0)
      ctx.unsupported('Attention past_present_share_buffer is not supported');
    if (ctx.input(6)) ctx.unsupported('Attention past_sequence_length is not supported');
    const width = staticDim(ctx, w, 1, 'the weights width');
    const sizes = ctx.hasAttr('qkv_hidden_sizes') ? ctx.ints('qkv_hidden_sizes') : [width / 3, width / 3, width / 3];
    if (sizes.length !== 3 || sizes.some((s) => !(s > 0) || !Number.isInteger(s))) {
      ctx.fail(`qkv_hidden_sizes must be 3 positive sizes, got [${sizes.join(',')}] (weights width ${width})`);
    }
    if (sizes[0] !== sizes[1]) ctx.fail(`Q and K hidden sizes differ: ${sizes[0]} vs ${sizes[1]}`);
    if (sizes[0]! + sizes[1]! + sizes[2]! !== width) {
      ctx.fail(`qkv_hidden_sizes [${sizes.join(',')}] do not add up to the weights width ${width}`);
    }
    const [hq, hv] = [divide(ctx, sizes[0]!, n, 'Q hidden size'), divide(ctx, sizes[2]!, n, 'V hidden size')];
    const xin = x.type.shape[2];
    if (typeof xin === 'number' && w.type.shape[0] !== xin) {
      ctx.fail(`weights [${w.type.shape.join(',')}] do not match the input hidden size ${xin}`);
    }
    let qkv = ctx.emit('matmul', [x, w]);
    const bias = ctx.input(2);
    if (bias) {
      if (bias.type.dtype !== dt) ctx.fail(`bias has dtype ${bias.type.dtype}, input has ${dt}`);
      if (bias.type.shape.length !== 1 || bias.type.shape[0] !== width) {
        ctx.fail(`bias must be 1-D [${width}], got [${bias.type.shape.join(',')}]`);
      }
      qkv = ctx.emit('add', [qkv, bias]);
    }
    const [q, k, v] = ctx.emitN('split', [qkv], { axis: -1, split: sizes }, 3);
    const past = ctx.input(4);
    let pastK: Value | null = null;
    let pastV: Value | null = null;
    if (past) {
      const ps = past.type.shape;
      if (past.type.dtype !== dt) ctx.fail(`past has dtype ${past.type.dtype}, input has ${dt}`);
      if (hq !== hv) ctx.fail(`past needs equal Q/K and V head sizes, got ${hq} and ${hv}`);
      if (ps.length !== 5 || ps[0] !== 2 || ps[2] !== n || (typeof ps[4] === 'number' && ps[4] !== hq)) {
        ctx.fail(`past must be [2, batch, ${n}, past_seq, ${hq}], got [${ps.join(',')}]`);
      }
      [pastK, pastV] = [0, 1].map((i) => ctx.emit('gather', [past, scalar(ctx, 'i64', i)], { axis: 0 }));
    }
    const total = pastK ? addI(ctx, dimOf(ctx, pastK, 2), dimOf(ctx, x, 1)) : dimOf(ctx, x, 1);
    const mi = ctx.input(3);
    const filter = ctx.float('mask_filter_value', -10000);
    const mask = combine(
      ctx,
      mi ? paddingMask(ctx, mi, x.type.shape[0]!, total, dt, filter, true) : null,
      attentionBias(ctx, 5, dt),
    );
    const attrs: Record<string, number | boolean> = {
      q_num_heads: n,
      kv_num_heads: n,
      is_causal: ctx.int('unidirectional', 0) !== 0,
    };
    scaleAttr(ctx, attrs);
    const wantPresent = (ctx.node.outputs[1] ?? '') !== '';
    const outs = ctx.emitN('attention', [q!, k!, v!, mask, pastK, pastV], attrs, wantPresent ? 3 : 1);
    if (!wantPresent) return [outs[0]!];
    const present = ctx.emit(
      'concat',
      [outs[1]!, outs[2]!].map((t) => ctx.emit('unsqueeze', [t], { axes: [0] })),
      { axis: 0 },
    );
    return [outs[0]!, present];
  },
  1,
  MS,
);

// ---- GroupQueryAttention ----

onnxOp(
  'GroupQueryAttention',
  (ctx: ConvertContext) => {
    const n = heads(ctx, 'num_heads');
    const kvn = heads(ctx, 'kv_num_heads');
    if (n % kvn !== 0) ctx.fail(`num_heads ${n} must be a multiple of kv_num_heads ${kvn}`);
    const query = floatInput(ctx, 0, 'query', [3]);
    const dt = query.type.dtype;
    if (ctx.int('qk_output', 0) !== 0 || (ctx.node.outputs[3] ?? '') !== '') {
      ctx.unsupported('GroupQueryAttention output_qk is not supported');
    }
    const key = ctx.input(1);
    const value = ctx.input(2);
    const d = staticDim(ctx, query, -1, 'the query hidden size');
    let q: Value;
    let k: Value;
    let v: Value;
    let h: number;
    if (!key) {
      if (value) ctx.fail('packed QKV query takes no value');
      h = divide(ctx, d, n + 2 * kvn, 'packed QKV hidden size');
      const parts = ctx.emitN('split', [query], { axis: -1, split: [n * h, kvn * h, kvn * h] }, 3);
      [q, k, v] = [parts[0]!, parts[1]!, parts[2]!];
    } else {
      const vv = value ?? ctx.fail('value is required with key');
      h = divide(ctx, d, n, 'query hidden size');
      for (const [t, what] of [
        [key, 'key'],
        [vv, 'value'],
      ] as const) {
        if (t.type.dtype !== dt) ctx.fail(`${what} has dtype ${t.type.dtype}, query has ${dt}`);
        const s = t.type.shape;
        if (s.length !== 3 || (typeof s[2] === 'number' && s[2] !== kvn * h)) {
          ctx.fail(`${what} must be [batch, seq, ${kvn} * ${h}], got [${s.join(',')}]`);
        }
      }
      [q, k, v] = [query, key, vv];
    }
    const seqlens = ctx.req(5);
    const totalLen = ctx.req(6);
    for (const [t, what] of [
      [seqlens, 'seqlens_k'],
      [totalLen, 'total_sequence_length'],
    ] as const) {
      if (!INTS.includes(t.type.dtype)) ctx.fail(`${what} must be int32, got ${t.type.dtype}`);
    }
    const sb = seqlens.type.shape;
    const qb = query.type.shape[0];
    if (sb.length !== 1 || (typeof sb[0] === 'number' && typeof qb === 'number' && sb[0] !== qb)) {
      ctx.fail(`seqlens_k must be 1-D [batch = ${qb}], got [${sb.join(',')}]`);
    }
    if (totalLen.type.shape.some((x) => x !== 1)) ctx.fail('total_sequence_length must be a scalar');
    const pastK = ctx.input(3);
    const pastV = ctx.input(4);
    if (!pastK !== !pastV) ctx.fail('past_key and past_value must be given together');
    for (const p of [pastK, pastV]) {
      if (!p) continue;
      const s = p.type.shape;
      if (p.type.dtype !== dt) ctx.fail(`past has dtype ${p.type.dtype}, query has ${dt}`);
      if (s.length !== 4 || s[1] !== kvn || s[3] !== h) {
        ctx.fail(`past_key / past_value must be [batch, ${kvn}, past, ${h}], got [${s.join(',')}]`);
      }
    }
    const seq = dimOf(ctx, query, 1);
    // Each batch's past length: 0 on the first prompt (S == total_sequence_length), else seqlens_k + 1 - S.
    const totalVec = ctx.emit('add', [i64(ctx, seqlens), scalar(ctx, 'i64', 1)]);
    const first = ctx.emit('equal', [reshape(ctx, i64(ctx, totalLen), []), seq]);
    const pastLen = ctx.emit('where', [first, scalar(ctx, 'i64', 0), ctx.emit('sub', [totalVec, seq])]);
    const sIdx = iota(ctx, seq);
    const qPos = ctx.emit('add', [reshape(ctx, pastLen, [-1, 1]), reshape(ctx, sIdx, [1, -1])]); // [B, S]

    if (ctx.int('do_rotary', 0) !== 0) {
      const cos = floatInput(ctx, 7, 'cos_cache', [2]);
      const sin = floatInput(ctx, 8, 'sin_cache', [2]);
      const half = staticDim(ctx, cos, 1, 'the cos_cache width');
      if (2 * half > h) ctx.fail(`rotary dim 2 * ${half} exceeds the head size ${h}`);
      const posIn = ctx.input(9);
      const pos = posIn ? i64(ctx, posIn) : qPos;
      const attrs = { interleaved: ctx.int('rotary_interleaved', 0) !== 0, rotary_embedding_dim: 2 * half };
      q = ctx.emit('rotary_embedding', [q, cos, sin, pos], { ...attrs, num_heads: n });
      k = ctx.emit('rotary_embedding', [k, cos, sin, pos], { ...attrs, num_heads: kvn });
    } else if (!ctx.input(7) !== !ctx.input(8)) {
      ctx.fail('cos_cache and sin_cache must be given together'); // (without do_rotary they are not used)
    }

    // The present cache: past[:past_b] ++ new ++ zeros, length max(total_sequence_length, past buffer).
    const k4 = toHeads(ctx, k, kvn, h);
    const v4 = toHeads(ctx, v, kvn, h);
    const pBuf = pastK ? dimOf(ctx, pastK, 2) : scalar(ctx, 'i64', 0);
    const catLen = addI(ctx, pBuf, seq);
    const tc = totalLen.data?.data[0];
    const pb = pBuf.data?.data[0];
    // A constant total_sequence_length within the past buffer is ONNX Runtime's shared buffer: present is the past
    // buffer with the new rows written at past_b (other rows kept); otherwise present = past_b rows ++ new ++ zeros.
    const shared = tc !== undefined && pb !== undefined && tc <= pb;
    const presentLen: Value | number = shared ? pb : catLen;
    const t = iota(ctx, presentLen);
    const tRow = reshape(ctx, t, [1, -1]); // [1, T]
    const pl = reshape(ctx, pastLen, [-1, 1]); // [B, 1]
    const inPast = ctx.emit('less', [tRow, pl]);
    const inNew = ctx.emit('less', [tRow, ctx.emit('add', [pl, seq])]);
    const fromNew = ctx.emit('where', [
      inNew,
      ctx.emit('sub', [ctx.emit('add', [tRow, pBuf]), pl]),
      shared ? tRow : catLen,
    ]);
    // A past length outside [0, past buffer] (seqlens_k inconsistent with the cache) gets an index past the end:
    // gather's located run-time error (reference and devices), never values from the wrong rows.
    const bad = addI(ctx, catLen, scalar(ctx, 'i64', 1));
    // (In a shared buffer the new rows must fit too.)
    const plOk = ctx.emit('and', [
      ctx.emit('greater_equal', [pl, scalar(ctx, 'i64', 0)]),
      ctx.emit('less_equal', [shared ? ctx.emit('add', [pl, seq]) : pl, pBuf]),
    ]);
    const fromPast = ctx.emit('where', [plOk, tRow, bad]);
    const idx = ctx.emit('where', [inPast, fromPast, ctx.emit('where', [plOk, fromNew, bad])]); // [B, T]; catLen: zero row
    const idx4 = ctx.emit('expand', [reshape(ctx, idx, [0, 1, -1, 1]), ctx.constant('i64', [1, kvn, 1, h], [4])]);
    const zero = scalar(ctx, dt, 0);
    const present = (past: Value | null, cur: Value): Value => {
      const parts = [...(past ? [past] : []), cur, zerosLike(ctx, firstOf(ctx, cur, 2), zero)];
      return ctx.emit('gather_elements', [ctx.emit('concat', parts, { axis: 2 }), idx4], { axis: 2 });
    };
    const presentK = present(pastK, k4);
    const presentV = present(pastV, v4);

    // Query i of batch b sees keys j <= past_b + i, and with a local window only j >= past_b + i - window.
    const j = reshape(ctx, t, [1, 1, 1, -1]);
    const qp = reshape(ctx, qPos, [0, 1, -1, 1]); // [B, 1, S, 1]
    let ok = ctx.emit('less_equal', [j, qp]);
    const window = ctx.int('local_window_size', -1);
    if (window > 0) {
      ok = ctx.emit('and', [ok, ctx.emit('greater_equal', [j, ctx.emit('sub', [qp, scalar(ctx, 'i64', window)])])]);
    }
    let mask = ctx.emit('where', [ok, zero, scalar(ctx, dt, -Infinity)]);
    mask = combine(ctx, mask, attentionBias(ctx, 10, dt))!;
    const softcap = ctx.float('softcap', 0);
    if (!(softcap >= 0)) ctx.fail(`softcap must be >= 0, got ${softcap}`);
    const attrs: Record<string, number | boolean> = { q_num_heads: n, kv_num_heads: kvn, softcap };
    scaleAttr(ctx, attrs);
    let [keys, values] = [presentK, presentV];
    // smooth_softmax / head_sink: softmax with an extra term exp(sink) in the denominator (sink 0, or head_sink[h])
    // is attention over one more key whose logit is the sink and whose value is zero: a zero key (its scaled, capped
    // score is exactly 0) with the sink as its bias, always attended.
    const sink = ctx.input(11);
    if (sink || ctx.int('smooth_softmax', 0) !== 0) {
      if (sink && (sink.type.dtype !== dt || sink.type.shape.length !== 1 || sink.type.shape[0] !== n)) {
        ctx.fail(`head_sink must be 1-D [${n}] of ${dt}, got ${sink.type.dtype} [${sink.type.shape.join(',')}]`);
      }
      keys = ctx.emit('concat', [presentK, zerosLike(ctx, firstOf(ctx, presentK, 2), zero)], { axis: 2 });
      values = ctx.emit('concat', [presentV, zerosLike(ctx, firstOf(ctx, presentV, 2), zero)], { axis: 2 });
      let col = zerosLike(ctx, firstOf(ctx, mask, 3), zero); // [B, 1|N, S, 1]
      if (sink) {
        col = ctx.emit('add', [col, reshape(ctx, sink, [1, n, 1, 1])]);
        mask = ctx.emit('add', [mask, zerosLike(ctx, reshape(ctx, sink, [1, n, 1, 1]), zero)]);
      }
      mask = ctx.emit('concat', [mask, col], { axis: 3 });
    }
    const y = ctx.emit('attention', [toHeads(ctx, q, n, h), keys, values, mask], attrs);
    return [fromHeads(ctx, y), presentK, presentV];
  },
  1,
  MS,
);
