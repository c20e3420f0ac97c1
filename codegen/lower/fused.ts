/**
 * `fused_elementwise` lowers to ONE pointwise kernel: the body is walked in order and each op's value expression is
 * built from its inputs' expressions with the same builders the standalone ops use (elementwise.ts) — body inputs
 * through `loadBroadcast` (broadcast to the fused output shape), interior values as the expressions just built,
 * bound once with `let` so a value read twice is computed once.
 */
import type { Graph, Value } from '../../ir/graph.js';
import {
  contractionPrologue,
  contractionView,
  FUSIBLE_OPS,
  fusedBody,
  inferBody,
  INJECTIVE_OPS,
} from '../../ir/ops/fused.js';
import { contiguousLayout, isContiguous } from '../../ir/layout.js';
import { tensorType } from '../../ir/types.js';
import { numel } from '../../ir/shape.js';
import { getOp, resolveAttrs } from '../../ir/registry.js';
import { UnsupportedError } from '../../ir/errors.js';
import { add, bin, c, cast, div, isnan, lt, mod, mul, select, sub, type Expr } from '../kir.js';
import { BINARY, CUSTOM_EXPRS, UNARY, convert, nanMax } from './elementwise.js';
import type { Contraction } from './contraction/contraction.js';
import { lowerContraction } from './contraction/lower.js';
import type { KernelBuilder, LowerCtx, TensorInfo } from './kernel-builder.js';
import { bstrides, gemmContraction, matmulContraction } from './matmul.js';
import { nbitsContraction } from './blockq.js';
import { ggmlContraction } from './ggml.js';
import { pointwiseSteps } from './pointwise.js';
import { REDUCE_KINDS, reduceSpec } from './reduce.js';
import { loadCompute, rowReduce } from './rowreduce.js';
import { registerLowering } from './registry.js';
import { computeType } from './storage.js';

const isFloatT = (e: Expr) => e.type === 'f32' || e.type === 'f16';

/** The value of one body op from its operands' expressions (`sub` carries the op's attrs and dtypes). */
function build(op: string, xs: readonly (Expr | undefined)[], sub: LowerCtx, kb: KernelBuilder): Expr {
  const u = UNARY[op];
  if (u) return u(xs[0]!, sub);
  const b = BINARY[op];
  if (b) return b(xs[0]!, xs[1]!, sub);
  const all = xs.filter((x): x is Expr => x !== undefined);
  switch (op) {
    case 'max':
    case 'min':
      return all.reduce((a, y) => nanMax(a, y, op === 'max'));
    case 'sum':
      return all.reduce((a, y) => bin('add', a, y));
    case 'cast':
      return convert(xs[0]!, sub.inputs[0]!.dtype, sub.attrs['to'] as TensorInfo['dtype']);
    case 'clip': {
      // as the clip lowering: bounds are scalars, NaN passes through
      const x = xs[0]!;
      let y = x;
      if (xs[1]) y = bin('max', y, xs[1]);
      if (xs[2]) y = bin('min', y, xs[2]);
      return isFloatT(x) ? select(isnan(x), x, y) : y;
    }
    case 'where':
      return select(xs[0]!, xs[1]!, xs[2]!);
  }
  const custom = CUSTOM_EXPRS.get(op);
  if (custom) return custom(all, sub, kb);
  throw new UnsupportedError(`op ${op} in a fused body has no expression builder`, { node: sub.node, op });
}

/**
 * Expressions of a body's nodes in order, into `env` (which holds the body inputs, and the first node's value when
 * `from` is 1); returns the body output's.
 */
function evalBody(kb: KernelBuilder, ctx: LowerCtx, body: Graph, env: Map<Value, Expr>, from: number): Expr {
  const outShape = ctx.outputs[0]!.shape;
  const info = (v: Value): TensorInfo => ({ dtype: v.type.dtype, shape: outShape });
  for (const k of body.constants) {
    const x = k.data!.data[0]!;
    const ct = computeType(k.type.dtype);
    env.set(k, ct === 'bool' ? c.bool(x !== 0) : c.of(ct, Number(x)));
  }
  let last: Expr | undefined;
  for (const n of body.nodes.slice(from)) {
    if (!FUSIBLE_OPS.has(n.op)) {
      throw new UnsupportedError(`op ${n.op} may not appear in a fused body`, { node: ctx.node, op: n.op });
    }
    const sub: LowerCtx = {
      ...ctx,
      op: n.op,
      attrs: resolveAttrs(getOp(n.op), n.attrs, n.name),
      inputs: n.inputs.map((x) => (x ? info(x) : undefined)),
      outputs: [info(n.outputs[0]!)],
    };
    const r = build(
      n.op,
      n.inputs.map((x) => (x ? env.get(x) : undefined)),
      sub,
      kb,
    );
    last = kb.let('f', roundInterior(ctx, n.outputs[0]!, body, r));
    env.set(n.outputs[0]!, last);
  }
  return env.get(body.outputs[0]!) ?? last!;
}

/** An f16 value held in f16 storage is rounded there when unfused: round the same way inside the group. */
function roundInterior(ctx: LowerCtx, v: Value, body: Graph, r: Expr): Expr {
  return v.type.dtype === 'f16' && ctx.caps.f16 && r.type === 'f32' && v !== body.outputs[0]
    ? cast('f32', cast('f16', r))
    : r;
}

registerLowering('fused_elementwise', (ctx) => {
  const body = fusedBody(ctx.attrs['body'] as string, ctx.node);
  const reads = ctx.inputs.map((_, i) => i);
  return pointwiseSteps(ctx, {
    label: 'fused',
    reads,
    value: (p) => {
      const env = new Map<Value, Expr>();
      body.inputs.forEach((v, i) => env.set(v, p.kb.let('in', p.loadBroadcast(i))));
      return evalBody(p.kb, ctx, body, env, 0);
    },
  });
});

/**
 * `fused_injective` lowers to ONE pointwise kernel: each output element's flat index is mapped back through the body —
 * a view op by its `OpDef.layout` over its input (offset + Σ coordinate × stride), a concat by the part its
 * coordinate along the axis falls in (every part's index computed clamped, the right one selected) — to the one input
 * element it copies. Sizes, offsets and strides are uniforms, so a decode step's growing cache reuses the kernel.
 */
registerLowering('fused_injective', (ctx) => {
  const body = fusedBody(ctx.attrs['body'] as string, ctx.node, 'fused_injective');
  const types = inferBody(
    body,
    ctx.inputs.map((t) => tensorType(t!.dtype, t!.shape)),
    ctx.node,
  );
  const shapeOf = (x: Value) => types.get(x)!.shape as number[];
  const inputIndex = new Map(body.inputs.map((x, i) => [x, i]));
  return pointwiseSteps(ctx, {
    label: 'fused_injective',
    reads: ctx.inputs.map((_, i) => i),
    value: (p) => {
      const kb = p.kb;
      const u = (hint: string, x: number) => (x === 0 || x === 1 ? c.i32(x) : kb.uniform(hint, x));
      /** The element of body value `x` at row-major index `flat`. */
      const at = (x: Value, flat: Expr): Expr => {
        const i = inputIndex.get(x);
        if (i !== undefined) return p.loadAt(i, flat);
        const n = x.producer!;
        if (!INJECTIVE_OPS.has(n.op)) {
          throw new UnsupportedError(`op ${n.op} in an injective body`, { node: ctx.node, op: n.op });
        }
        const shape = shapeOf(x);
        if (n.op === 'concat') {
          const r = shape.length;
          const axis = ((n.attrs['axis'] as number) + r) % r;
          const inner = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
          const innerU = u('in', inner);
          const cAx = kb.let('ca', mod(div(flat, innerU), u('ax', shape[axis]!)));
          const outer = kb.let('co', div(flat, u('oa', shape[axis]! * inner)));
          const rest = kb.let('cr', mod(flat, innerU));
          let start = 0;
          const parts = n.inputs.map((y) => {
            const a = shapeOf(y!)[axis]!;
            const o = start;
            start += a;
            const local = bin('min', bin('max', sub(cAx, u('o', o)), c.i32(0)), u('a', Math.max(a - 1, 0)));
            const idx = kb.let('ci', add(add(mul(outer, u('pa', a * inner)), mul(local, innerU)), rest));
            return { end: start, value: a === 0 ? undefined : at(y!, idx) };
          });
          let val: Expr | undefined;
          for (let k = parts.length - 1; k >= 0; k--) {
            const pv = parts[k]!.value;
            if (!pv) continue;
            val = val === undefined ? pv : select(lt(cAx, u('e', parts[k]!.end)), pv, val);
          }
          return val!;
        }
        const src = n.inputs[0]!;
        const def = getOp(n.op);
        const l = def.layout?.(contiguousLayout(shapeOf(src)), {
          attrs: resolveAttrs(def, n.attrs, n.name),
          hostInputs: n.inputs.map((y) => (y ? (y.data ?? undefined) : null)),
          outShapes: [shape],
        })?.[0];
        if (!l) throw new UnsupportedError(`${n.op} in an injective body has no layout`, { node: ctx.node, op: n.op });
        if (isContiguous(l)) return at(src, l.offset === 0 ? flat : kb.let('vi', add(flat, u('vo', l.offset))));
        let idx: Expr = u('vo', l.offset);
        let after = 1;
        for (let d = shape.length - 1; d >= 0; d--) {
          const dim = shape[d]!;
          if (dim !== 1 && l.strides[d] !== 0) {
            const coord = kb.let('vc', mod(div(flat, u('vs', after)), u('vd', dim)));
            idx = add(idx, mul(coord, u('vt', l.strides[d]!)));
          }
          after *= dim;
        }
        return at(src, kb.let('vi', idx));
      };
      return at(body.outputs[0]!, p.flat);
    },
  });
});

/**
 * `fused_contraction` lowers to the contraction kernel of its first node (matmul, gemm or matmul_nbits, over the node's first
 * inputs) with an epilogue: the other inputs are read at each output element, broadcast over its batch / m / n axes,
 * and the rest of the body is evaluated on the sum before the store.
 */
registerLowering('fused_contraction', (ctx) => {
  const body = fusedBody(ctx.attrs['body'] as string, ctx.node, 'fused_contraction');
  // a norm before the product (inputs x, weight, then the other operands): the schedules fold it in (rowNorm)
  const norm = contractionPrologue(body);
  const anchor = body.nodes[norm ? 1 : 0]!;
  const nA = anchor.inputs.length;
  const anchorOut = anchor.outputs[0]!;
  const outShape = ctx.outputs[0]!.shape;
  // node inputs the contraction reads, in its own input order
  const conInputs = norm
    ? [0, ...Array.from({ length: nA - 1 }, (_, i) => i + 2)]
    : Array.from({ length: nA }, (_, i) => i);
  // a reshape of a 2-D product [M, N] to [..., N]: the kernel computes [M, N] with M split into the leading dims
  const view = contractionView(body);
  const N = outShape.at(-1)!;
  const anchorShape = view ? [numel(outShape) / Math.max(N, 1), N] : outShape;
  const sub: LowerCtx = {
    ...ctx,
    op: anchor.op,
    attrs: resolveAttrs(getOp(anchor.op), anchor.attrs, anchor.name),
    inputs: conInputs.map((i) => ctx.inputs[i]),
    outputs: [{ dtype: anchorOut.type.dtype, shape: anchorShape }],
  };
  const con =
    anchor.op === 'gemm'
      ? gemmContraction(sub)
      : anchor.op === 'matmul_nbits'
        ? nbitsContraction(sub, (i) => conInputs[i]!) // binds its packed operands itself, at the node's positions
        : anchor.op === 'matmul_ggml'
          ? ggmlContraction(sub, (i) => conInputs[i]!) // the ggml blocks likewise
          : matmulContraction(sub, 'matmul');
  con.label = `fused_${con.label}`;
  for (const w of [con.a, con.b, con.bias, con.aZero, con.bZero]) if (w) w.input = conInputs[w.input]!;
  if (norm) {
    const zeros = (xs: readonly number[]) => xs.map(() => 0);
    const eps = resolveAttrs(getOp(norm.op), norm.attrs, norm.name)['epsilon'] as number;
    const st = { batch: zeros(con.dims.batch), m: zeros(con.dims.m), n: zeros(con.dims.n), k: [1] };
    if (con.dims.k.length !== 1) {
      throw new UnsupportedError('an RMS norm before a contraction over several k axes', {
        node: ctx.node,
        op: ctx.op,
      });
    }
    con.rowNorm = { weight: { input: 1, st }, eps, kind: norm.op === 'layer_norm' ? 'layer' : 'rms' };
  }
  if (view) splitRows(con, outShape.slice(0, -1));
  const first = norm ? nA + 1 : nA;
  const nb = view ? 0 : outShape.length - 2;
  const r = outShape.length;
  con.extras = ctx.inputs.slice(first).map((t, j) => {
    const st = bstrides(t!.shape, outShape);
    const m = view ? st.slice(0, r - 1) : [st[nb]!];
    return { input: first + j, st: { batch: st.slice(0, nb), m, n: [st[r - 1]!], k: [0] } };
  });
  con.post = (kb, acc, extras) => {
    const env = new Map<Value, Expr>();
    const product = roundInterior(ctx, anchorOut, body, acc);
    env.set(anchorOut, product);
    if (view) env.set(view.outputs[0]!, product);
    body.inputs.slice(first).forEach((v, j) => env.set(v, extras[j]!));
    return evalBody(kb, ctx, body, env, (norm ? 1 : 0) + (view ? 2 : 1));
  };
  return lowerContraction(ctx, con);
});

/** Split a 2-D contraction's single m axis (size M) into `dims` (row-major, product M) in every view. */
function splitRows(con: Contraction, dims: readonly number[]): void {
  const after = dims.map((_, i) => dims.slice(i + 1).reduce((p, d) => p * d, 1));
  for (const w of [con.a.st, con.b.st, con.out, con.bias?.st, con.rowNorm?.weight.st]) {
    if (w) w.m = after.map((a) => w.m[0]! * a);
  }
  con.dims.m = [...dims];
}

/**
 * `fused_reduction` lowers to the row-reduction kernel of its first node with an epilogue: each row's reduced value
 * goes through the rest of the body — the other inputs read at the row's output element, broadcast to the reduced
 * shape — before the store (a custom op's epilogue, a scale, a residual), so the reduced tensor never round-trips.
 */
registerLowering('fused_reduction', (ctx) => {
  const body = fusedBody(ctx.attrs['body'] as string, ctx.node, 'fused_reduction');
  const anchor = body.nodes[0]!;
  const kind = REDUCE_KINDS[anchor.op];
  if (!kind) throw new UnsupportedError(`${anchor.op} cannot start a fused reduction`, { node: ctx.node, op: ctx.op });
  const anchorOut = anchor.outputs[0]!;
  const outShape = ctx.outputs[0]!.shape;
  const sub: LowerCtx = {
    ...ctx,
    op: anchor.op,
    attrs: resolveAttrs(getOp(anchor.op), anchor.attrs, anchor.name),
    inputs: [ctx.inputs[0]],
    outputs: [{ dtype: anchorOut.type.dtype, shape: outShape }],
  };
  const spec = reduceSpec(sub, kind);
  const step = rowReduce(ctx, {
    ...spec,
    label: `fused_${spec.label}`,
    finish: (acc, len, rk, row) => {
      const kb = rk.kb;
      const env = new Map<Value, Expr>();
      env.set(anchorOut, roundInterior(ctx, anchorOut, body, spec.finish(acc, len, rk, row)));
      body.inputs.slice(1).forEach((v, j) => {
        const i = j + 1;
        const info = ctx.inputs[i]!;
        const st = bstrides(info.shape, outShape);
        // the row's output coordinates, mapped onto the (broadcast) input
        let idx: Expr = c.i32(0);
        let after = 1;
        for (let d = outShape.length - 1; d >= 0; d--) {
          const dim = outShape[d]!;
          if (dim !== 1 && st[d] !== 0) idx = add(idx, mul(mod(div(row, c.i32(after)), c.i32(dim)), c.i32(st[d]!)));
          after *= dim;
        }
        env.set(v, kb.let('ex', loadCompute(kb, kb.input(ctx, i), info, idx)));
      });
      return evalBody(kb, ctx, body, env, 1);
    },
  });
  return [step];
});
