/**
 * The packed-word GEMV schedule: decode-sized products (M ≤ 4 rows of a) with b given as packed words of W [N, K]
 * (`Contraction.packedB`: block-quantized weights). Each lane reads whole u32 words of one W row (8 int4 / 4 int8
 * values), the block's scale and zero point once per word and the matching run of a, and accumulates Σ (q − z) · a in
 * f32, scaled once per word; LANES lanes per row read consecutive words (coalesced) and meet in workgroup memory,
 * where the row's first lane adds their sums in order and applies the epilogue (bias, fused elementwise ops) — and,
 * with a fused RMS norm, the lanes also sum a² and a is multiplied by the norm's weight as it is read. The weight is
 * read once, packed: bytes ≈ its packed size, the point of low-bit weights for bandwidth-bound decode.
 */
import {
  add,
  and,
  assign,
  barrier,
  bin,
  c,
  cast,
  div,
  eq,
  for_,
  if_,
  lt,
  mod,
  mul,
  select,
  sload,
  sstore,
  sub,
  v,
  var_,
  type KType,
} from '../../kir.js';
import { grid1d, KernelBuilder, type LowerCtx, type LoweredStep } from '../kernel-builder.js';
import { fromCompute } from '../pointwise.js';
import { contiguousOn, outputReads, total, type Contraction } from './contraction.js';
import { Gen } from './gen.js';

/** Rows of a (batch × m) up to which a packed b runs this schedule (decode and small decode batches). */
export const PACKED_GEMV_MAX_M = 4;

/**
 * Lanes that share one output row (each reads every LANES-th word of the row: 64 consecutive bytes per row per step,
 * whole memory sectors). On lavapipe 8–16 lanes measured 10–20% faster than 32 (fewer partial sums to meet).
 */
const LANES = 16;

/** Does the packed GEMV cover this (simplified) contraction? */
export function packedGemvApplies(ctx: LowerCtx, con: Contraction): boolean {
  const M = total(con, 'm');
  return (
    !!con.packedB &&
    M >= 1 &&
    M * total(con, 'batch') <= PACKED_GEMV_MAX_M &&
    con.b.st.batch.every((s) => s === 0) &&
    con.dims.n.length === 1 &&
    con.dims.k.length === 1 &&
    contiguousOn(con.a.st, 'k') &&
    !con.aZero &&
    !con.bZero &&
    con.rowNorm?.kind !== 'layer' &&
    ctx.inputs[con.a.input]!.dtype === 'f32'
  );
}

export function packedGemv(ctx: LowerCtx, con: Contraction, target: KType): LoweredStep {
  const p = con.packedB!;
  const T = Math.min(256, 2 ** Math.floor(Math.log2(ctx.caps.maxWorkgroupSize)));
  const vpw = 32 / p.bits; // values per word
  const KW = Math.ceil(p.K / vpw); // words holding some k < K (a ragged last block's padding is never read)
  // short rows (a small model's K) take fewer lanes, so no lane idles and more rows share a workgroup
  const L = Math.min(LANES, T, 2 ** Math.ceil(Math.log2(Math.max(KW, 1))));
  const R = T / L; // output rows per workgroup
  const kb = new KernelBuilder(`${con.label}_gemv`, ctx.caps);
  // b is read through `p` only: Gen binds every other operand
  const g = new Gen(kb, ctx, {
    ...con,
    bLoad: () => () => {
      throw new Error(`${con.label}: the packed GEMV reads b as words`);
    },
  });
  const P = p.bind(kb);
  const ob = kb.output(ctx, 0);
  const rows = total(con, 'batch') * total(con, 'm'); // rows of a: b is the same matrix for every batch
  const Nu = g.total('n');
  const Ku = g.total('k');
  const groupsN = Math.ceil(p.N / R);
  const gn = kb.uniform('gn', groupsN);
  const gi = kb.groupIndex();
  const l = kb.localIndex();
  const row = kb.let('row', div(gi, gn));
  const lane = kb.let('lane', mod(l, c.i32(L)));
  const n = kb.let('n', add(mul(sub(gi, mul(row, gn)), c.i32(R)), div(l, c.i32(L))));
  const valid = kb.let('valid', lt(n, Nu));
  const nc = kb.let('nc', select(valid, n, c.i32(0)));
  const Mu = g.total('m');
  const mi = con.dims.batch.length ? kb.let('mi', mod(row, Mu)) : row;
  const bc = g.coords('batch', con.dims.batch.length ? kb.let('bi', div(row, Mu)) : c.i32(0));
  const mc = g.coords('m', mi);
  /** A view's offset of this row's batch and m coordinates. */
  const rowOff = (st: Contraction['a']['st'], name: string) =>
    add(g.offset(st, name, 'batch', bc), g.offset(st, name, 'm', mc));
  const ra = kb.let('ra', rowOff(con.a.st, 'a'));
  const rms = con.rowNorm?.kind === 'rms';
  const ragged = p.K % vpw !== 0; // the last word runs past K: its a reads are masked
  kb.emit(var_('acc', 'f32', c.f32(0)));
  if (rms) kb.emit(var_('ss', 'f32', c.f32(0)));
  const [body] = kb.collect(() => {
    const w = v('w', 'i32');
    const word = kb.let('word', P.word(nc, w));
    const j = kb.let('blk', bin('shr', w, c.u32(Math.log2(p.block / vpw))));
    const scale = kb.let('sc', P.scale(nc, j));
    const z = kb.let('z', P.zero(nc, j));
    kb.emit(var_('part', 'f32', c.f32(0)));
    for (let i = 0; i < vpw; i++) {
      const k = add(mul(w, c.i32(vpw)), c.i32(i));
      const inK = ragged ? kb.let('ink', lt(k, Ku)) : undefined;
      const at = add(ra, inK ? select(inK, k, c.i32(0)) : k);
      let x = kb.let('x', g.ld(con.a, at));
      if (inK) x = kb.let('x', select(inK, x, c.f32(0)));
      if (rms) {
        kb.emit(assign('ss', add(v('ss', 'f32'), mul(x, x))));
        x = mul(x, g.normWeight([inK ? select(inK, k, c.i32(0)) : k]));
      }
      const q = cast('f32', bin('bitand', bin('shr', word, c.u32(i * p.bits)), c.u32(2 ** p.bits - 1)));
      kb.emit(assign('part', add(v('part', 'f32'), mul(sub(q, z), x))));
    }
    kb.emit(assign('acc', add(v('acc', 'f32'), mul(v('part', 'f32'), scale))));
  });
  kb.emit(for_('w', lane, kb.uniform('kw', KW), body, c.i32(L)));
  // partial sums meet in workgroup memory; the row's first lane adds them in order
  const sums = rms ? ['acc', 'ss'] : ['acc'];
  const tail = sums.map((name) => {
    const red = kb.sharedArray(`red_${name}`, 'f32', T);
    kb.emit(sstore(red, l, v(name, 'f32')));
    return for_('j', c.i32(1), c.i32(L), [assign(name, add(v(name, 'f32'), sload(red, add(l, v('j', 'i32')), 'f32')))]);
  });
  kb.emit(barrier);
  const [store] = kb.collect(() => {
    const result = rms ? mul(v('acc', 'f32'), g.normScale(v('ss', 'f32'))) : v('acc', 'f32');
    const ncs = [nc];
    const idx = outputReads(con).map(({ w, name }) => add(rowOff(w.st, name), g.offset(w.st, name, 'n', ncs)));
    const value = fromCompute(g.epilogue(result, idx, { m: mi, n: nc }), target);
    const oi = kb.let('oi', add(rowOff(con.out, 'o'), g.offset(con.out, 'o', 'n', ncs)));
    kb.emit({ k: 'store', buf: ob, index: oi, value });
  });
  kb.emit(if_(and(valid, eq(lane, c.i32(0))), [...tail, ...store]));
  return kb.build([T, 1, 1], grid1d(groupsN * rows, ctx.caps));
}
