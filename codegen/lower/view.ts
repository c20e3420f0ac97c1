/**
 * Strided input views, applied to any lowered kernel: a load hook. Lowerings index their inputs as row-major
 * tensors; when the executor binds a movement op's result as a view of its producer's buffer (see `OpDef.layout`),
 * every load of that input is rewritten here from the row-major index to the element's place in the producer's
 * buffer (offset + Σ coordinate × stride over the layout's merged dims, sizes and strides as uniforms). So a
 * transpose, split, slice, single-index gather or expand feeding any kernel costs index arithmetic, not a copy kernel
 * and a round trip through memory.
 */
import { simplifyLayout, type StridedLayout } from '../../ir/layout.js';
import { add, c, cast, div, kernelHash, load, mod, mul, uni, type Expr, type Kernel, type Stmt } from '../kir.js';
import type { LowerCtx, LoweredStep } from './kernel-builder.js';
import { pointwise } from './pointwise.js';

/** Rewrite `step`'s loads of the inputs that have a layout (indexed by node input). */
export function applyInputLayouts(step: LoweredStep, layouts: readonly (StridedLayout | undefined)[]): LoweredStep {
  const views = new Map<string, StridedLayout>();
  step.bindings.forEach((b, j) => {
    if (b.kind === 'in' && layouts[b.index]) views.set(step.kernel.buffers[j]!.name, simplifyLayout(layouts[b.index]!));
  });
  if (views.size === 0) return step;
  const uniforms = [...step.kernel.uniforms];
  const values = [...step.uniforms];
  const uniform = (hint: string, value: number): Expr => {
    const name = `${hint}${uniforms.length}`;
    uniforms.push({ name, type: 'i32' });
    values.push(value);
    return uni(name, 'i32');
  };
  // per viewed buffer: the map from a row-major index to the buffer index (uniforms declared once per buffer)
  const maps = new Map<string, (index: Expr) => Expr>();
  for (const [buf, l] of views) {
    const off = uniform('voff', l.offset);
    const r = l.shape.length;
    const dims = l.shape.map((size, d) => {
      const inner = l.shape.slice(d + 1).reduce((a, b) => a * b, 1);
      return {
        inner: d < r - 1 ? uniform('vin', inner) : undefined,
        size: d > 0 ? uniform('vsz', size) : undefined,
        stride: l.strides[d] === 1 || l.strides[d] === 0 ? c.i32(l.strides[d]!) : uniform('vst', l.strides[d]!),
      };
    });
    maps.set(buf, (index) => {
      const i = index.type === 'i32' ? index : cast('i32', index);
      let at: Expr = off;
      dims.forEach((dm) => {
        if (dm.stride.k === 'const' && dm.stride.value === 0) return;
        let coord = dm.inner ? div(i, dm.inner) : i;
        if (dm.size) coord = mod(coord, dm.size);
        at = add(at, mul(coord, dm.stride));
      });
      return index.type === 'i32' ? at : cast(index.type, at);
    });
  }

  let counter = 0;
  // Loads of viewed buffers in `e`; their mapped indices are bound to lets emitted before the statement (`pre`).
  const expr = (e: Expr, pre: Stmt[] | undefined): Expr => {
    switch (e.k) {
      case 'load': {
        const index = expr(e.index, pre);
        const map = maps.get(e.buf);
        if (!map) return index === e.index ? e : { ...e, index };
        let mapped = map(index);
        if (pre && mapped.k !== 'const' && mapped.k !== 'var' && mapped.k !== 'uniform') {
          const name = `vidx_${counter++}`;
          pre.push({ k: 'let', name, value: mapped });
          mapped = { k: 'var', name, type: mapped.type };
        }
        return load(e.buf, mapped, e.type);
      }
      case 'bin':
        return { ...e, a: expr(e.a, pre), b: expr(e.b, pre) };
      case 'un':
      case 'cast':
      case 'bitcast':
      case 'shuffle_xor':
        return { ...e, a: expr(e.a, pre) };
      case 'select':
        return { ...e, cond: expr(e.cond, pre), a: expr(e.a, pre), b: expr(e.b, pre) };
      case 'dot4':
        return { ...e, a: expr(e.a, pre), b: expr(e.b, pre) };
      case 'shared_load':
        return { ...e, index: expr(e.index, pre) };
      default:
        return e;
    }
  };
  const block = (ss: readonly Stmt[]): Stmt[] => {
    const out: Stmt[] = [];
    for (const s of ss) {
      const pre: Stmt[] = [];
      let t: Stmt;
      switch (s.k) {
        case 'let':
        case 'assign':
          t = { ...s, value: expr(s.value, pre) };
          break;
        case 'var':
          t = { ...s, init: expr(s.init, pre) };
          break;
        case 'store':
        case 'shared_store':
          t = { ...s, index: expr(s.index, pre), value: expr(s.value, pre) };
          break;
        case 'store_packed':
          t = { ...s, word: expr(s.word, pre), values: s.values.map((v) => expr(v, pre)) };
          break;
        case 'if':
          t = { ...s, cond: expr(s.cond, pre), then: block(s.then), ...(s.else ? { else: block(s.else) } : {}) };
          break;
        case 'for':
          // bounds are evaluated per iteration: mapped inline, never hoisted out of the loop
          t = {
            ...s,
            start: expr(s.start, pre),
            end: expr(s.end, undefined),
            step: expr(s.step, undefined),
            body: block(s.body),
          };
          break;
        default:
          t = s;
      }
      out.push(...pre, t);
    }
    return out;
  };
  const draft: Kernel = { ...step.kernel, name: '', uniforms, body: block(step.kernel.body) };
  const base = step.kernel.name.replace(/_[0-9a-f]{10}$/, '');
  return {
    ...step,
    kernel: { ...draft, name: `${base}_${kernelHash(draft).slice(0, 10)}` },
    uniforms: values,
  };
}

/**
 * A copy of input 0 into output 0, row-major (the input bound through its layout): what materializes a view for a
 * consumer that must have a buffer of its own (an in-place update).
 */
export function lowerCopy(ctx: LowerCtx, layout: StridedLayout): LoweredStep {
  // a row-major copy through the pointwise template; the load then follows the view's layout
  const step = pointwise(ctx, { label: 'copy_view', reads: [0], value: (p) => p.loadAt(0, p.flat) });
  return applyInputLayouts(step, [layout]);
}
