import { add, bin, c, cast, div, load, loadType, mod, mul, select, sub, un, type Expr, type KType } from '../../kir.js';
import type { KernelBuilder, LowerCtx } from '../kernel-builder.js';
import { toCompute } from '../pointwise.js';
import { computeType, storageOf } from '../storage.js';
import { prod, type Axes, type Cat, type Contraction, type OutputAt, type View } from './contraction.js';

/** Buffers, uniforms and index decomposition of one contraction kernel. */
export class Gen {
  readonly bufs = new Map<number, string>();
  readonly ct: KType;
  private readonly unis = new Map<string, Expr>();
  /** b's dequantizing load (`Contraction.bLoad`), bound for this kernel. */
  private readonly bAt?: (index: Expr) => Expr;
  constructor(
    readonly kb: KernelBuilder,
    readonly ctx: LowerCtx,
    readonly con: Contraction,
    /** Loads through another template (pointwise) instead of binding the inputs here. */
    private readonly loadAt?: (input: number, index: Expr) => Expr,
  ) {
    if (!loadAt) {
      for (const w of [con.a, con.b, con.aZero, con.bZero, con.bias, con.rowNorm?.weight, ...(con.extras ?? [])]) {
        if (w === con.b && con.bLoad) this.bAt = con.bLoad(kb);
        else if (w && !this.bufs.has(w.input)) this.bufs.set(w.input, kb.input(ctx, w.input));
      }
    } else if (con.bLoad) throw new Error(`${con.label}: a dequantizing load of b needs a tiled or skinny schedule`);
    this.ct = computeType(ctx.inputs[con.a.input]!.dtype);
  }

  /** A uniform per role (never shared by value, so the kernel is the same for every shape of its class). */
  private u(role: string, value: number): Expr {
    let e = this.unis.get(role);
    if (!e) {
      e = this.kb.uniform(role.replace(/[^A-Za-z0-9]/g, ''), value);
      this.unis.set(role, e);
    }
    return e;
  }

  size(cat: Cat, i: number): Expr {
    return this.u(`d${cat}${i}_`, this.con.dims[cat][i]!);
  }

  total(cat: Cat): Expr {
    const d = this.con.dims[cat];
    if (d.length === 0) return c.i32(1);
    if (d.length === 1) return this.size(cat, 0);
    return this.u(`t${cat}_`, prod(d));
  }

  /**
   * Stride of an axis in a view: a uniform (broadcast zeros and unit strides too, so one kernel serves the class),
   * except the structural zeros — a / its zero point never walk n, b never m, the output and bias never k.
   */
  stride(view: Axes, name: string, cat: Cat, i: number): Expr {
    const role = name[0]!;
    if (
      (cat === 'n' && role === 'a') ||
      (cat === 'm' && role === 'b') ||
      (cat === 'k' && (role === 'o' || role === 'c' || role === 'e'))
    )
      return c.i32(0);
    return this.u(`s${name}${cat}${i}_`, view[cat][i]!);
  }

  /** Coordinates of a flat index over the axes of `cat` (last axis fastest). */
  coords(cat: Cat, flat: Expr): Expr[] {
    const d = this.con.dims[cat];
    if (d.length === 0) return [];
    if (d.length === 1) return [flat];
    const out: Expr[] = new Array(d.length);
    let rest = flat;
    for (let i = d.length - 1; i > 0; i--) {
      const sz = this.size(cat, i);
      out[i] = this.kb.let('x', mod(rest, sz));
      rest = this.kb.let('r', div(rest, sz));
    }
    out[0] = rest;
    return out;
  }

  offset(view: Axes, name: string, cat: Cat, coords: readonly Expr[]): Expr {
    let off: Expr = c.i32(0);
    coords.forEach((x, i) => (off = add(off, mul(x, this.stride(view, name, cat, i)))));
    return off;
  }

  /** Element `index` of a viewed input, in the compute type. */
  ld(w: View, index: Expr): Expr {
    if (w === this.con.b && this.bAt) return this.bAt(index);
    if (w.offset !== undefined) index = add(index, this.u(`o${w.input}_`, w.offset));
    if (this.loadAt) return this.loadAt(w.input, index);
    const info = this.ctx.inputs[w.input]!;
    const raw = load(this.bufs.get(w.input)!, index, loadType(storageOf(info.dtype, this.kb.caps)));
    return toCompute(raw, info.dtype);
  }

  /** The fused RMS norm's weight at k coordinates (rowNorm). */
  normWeight(kc: readonly Expr[], inb?: Expr): Expr {
    const w = this.con.rowNorm!.weight;
    const idx = this.offset(w.st, 'w', 'k', kc);
    return this.ld(w, inb ? select(inb, idx, c.i32(0)) : idx);
  }

  /** 1 / √(Σa² / K + eps): the fused RMS norm's scale of a row from its sum of squares. */
  normScale(ss: Expr): Expr {
    const f = (x: Expr) => (this.ct === 'f32' ? x : cast('f32', x));
    const r = div(
      c.f32(1),
      un('sqrt', add(div(f(ss), cast('f32', this.total('k'))), this.kb.uniform('eps', this.con.rowNorm!.eps, 'f32'))),
    );
    return this.ct === 'f32' ? r : cast(this.ct, r);
  }

  /** The fused layer norm's result from a shifted product sum and the row / column sums (rowNorm kind 'layer'). */
  layerScaled(acc: Expr, s1: Expr, s2: Expr, colSum: Expr): Expr {
    const f = (x: Expr) => (this.ct === 'f32' ? x : cast('f32', x));
    const K = cast('f32', this.total('k'));
    const mean = div(f(s1), K);
    const variance = bin('max', sub(div(f(s2), K), mul(mean, mean)), c.f32(0));
    const inv = div(c.f32(1), un('sqrt', add(variance, this.kb.uniform('eps', this.con.rowNorm!.eps, 'f32'))));
    const r = mul(inv, sub(f(acc), mul(mean, f(colSum))));
    return this.ct === 'f32' ? r : cast(this.ct, r);
  }

  zero(): Expr {
    return c.of(this.ct, 0);
  }

  /**
   * What is stored for an output element: alpha · acc + beta · bias, then the fused epilogue over the extras, in the
   * compute type. `reads` are the indices of `outputReads(con)` at the element (bias first).
   */
  epilogue(acc: Expr, reads: readonly Expr[], at: OutputAt): Expr {
    const { bias, extras, post } = this.con;
    const biasIndex = bias ? reads[0] : undefined;
    const y = this.scaled(acc, biasIndex);
    if (!post) return y;
    const off = bias ? 1 : 0;
    return post(
      this.kb,
      y,
      (extras ?? []).map((w, i) => this.ld(w, reads[off + i]!)),
      at,
    );
  }

  private scaled(acc: Expr, biasIndex: Expr | undefined): Expr {
    const { alpha, beta, bias } = this.con;
    // gemm's alpha / beta travel as uniforms of the compute type (u32: the two's-complement bits of a negative value)
    const k = (role: string, x: number) => {
      let e = this.unis.get(role);
      if (!e) {
        const t = this.ct === 'f32' ? 'f32' : this.ct === 'u32' ? 'u32' : 'i32';
        e = this.kb.uniform(role, t === 'u32' ? x >>> 0 : x, t);
        this.unis.set(role, e);
      }
      return e;
    };
    if (!this.con.scaled) return acc;
    let y = mul(k('alpha', alpha), acc);
    if (bias && biasIndex) y = add(y, mul(k('beta', beta), this.ld(bias, biasIndex)));
    return y;
  }
}
