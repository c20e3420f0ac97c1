/**
 * DSL AST → kernel IR: the checked function becomes statements emitted into a `KernelBuilder` (locals as `let` /
 * `var`, `if`, constant `for` loops) and the expression of its result. The same emitter serves the op's own pointwise
 * kernel and its place in a fused body (an elementwise group or a matmul epilogue): both hand it the arguments'
 * expressions. Intrinsics reuse the expression builders of the built-in elementwise ops, so NaN handling matches.
 */
import type { DType } from '../../ir/dtype.js';
import {
  add,
  assign,
  bin,
  c,
  cast,
  div,
  for_,
  if_,
  not,
  select,
  un,
  v,
  var_,
  type Expr,
  type KType,
} from '../../codegen/kir.js';
import { BINARY, UNARY, convert, nanMax } from '../../codegen/lower/elementwise.js';
import type { KernelBuilder, LowerCtx } from '../../codegen/lower/kernel-builder.js';
import type { DBin, DExpr, DslFunction, DStmt, VType } from './ast.js';

const DTYPE_OF: Record<VType, DType> = { f32: 'f32', i32: 'i32', u32: 'u32', bool: 'bool' };

class Emitter {
  private readonly names = new Map<number, string>();
  private ret: { value: string; done: string } | undefined;
  private readonly sub: LowerCtx;
  constructor(
    private readonly fn: DslFunction,
    private readonly kb: KernelBuilder,
    private readonly args: readonly Expr[],
    ctx: LowerCtx,
  ) {
    this.sub = { ...ctx, attrs: {} };
  }

  run(): Expr {
    const body = this.fn.body;
    const last = body[body.length - 1];
    // the common shape: one return, at the end of the function body
    if (last?.k === 'return' && countReturns(body) === 1) {
      this.block(body.slice(0, -1));
      return this.expr(last.value);
    }
    const t = kt(this.fn.result === 'f16' ? 'f32' : this.fn.result);
    this.ret = { value: this.kb.fresh('ret'), done: this.kb.fresh('done') };
    this.kb.emit(var_(this.ret.value, t, c.of(t, 0)), var_(this.ret.done, 'bool', c.bool(false)));
    this.block(body);
    return v(this.ret.value, t);
  }

  /** Statements; after one that may return, the rest run only if it did not. */
  block(ss: readonly DStmt[]): void {
    for (let i = 0; i < ss.length; i++) {
      const s = ss[i]!;
      this.stmt(s);
      if (s.k !== 'return' && this.ret && countReturns([s]) > 0 && i + 1 < ss.length) {
        const [rest] = this.kb.collect(() => this.block(ss.slice(i + 1)));
        this.kb.emit(if_(not(v(this.ret.done, 'bool')), rest));
        return;
      }
    }
  }

  stmt(s: DStmt): void {
    const kb = this.kb;
    switch (s.k) {
      case 'decl': {
        const name = kb.fresh('d');
        this.names.set(s.id, name);
        const init = this.expr(s.init);
        kb.emit(s.mutable ? var_(name, kt(s.t), init) : { k: 'let', name, value: init });
        return;
      }
      case 'assign':
        kb.emit(assign(this.names.get(s.id)!, this.expr(s.value)));
        return;
      case 'if': {
        const cond = this.expr(s.c);
        const [then] = kb.collect(() => this.block(s.then));
        const [els] = kb.collect(() => this.block(s.else));
        kb.emit(if_(cond, then, els.length ? els : undefined));
        return;
      }
      case 'for': {
        const name = kb.fresh('i');
        this.names.set(s.id, name);
        const [body] = kb.collect(() => {
          if (this.ret && countReturns(s.body) > 0) {
            const [inner] = kb.collect(() => this.block(s.body));
            kb.emit(if_(not(v(this.ret.done, 'bool')), inner));
          } else this.block(s.body);
        });
        kb.emit(for_(name, c.i32(s.start), c.i32(s.end), body, c.i32(s.step)));
        return;
      }
      case 'return': {
        const value = this.expr(s.value);
        kb.emit(assign(this.ret!.value, value), assign(this.ret!.done, c.bool(true)));
        return;
      }
    }
  }

  expr(e: DExpr): Expr {
    switch (e.k) {
      case 'lit':
        return e.t === 'bool' ? c.bool(e.v !== 0) : c.of(e.flex ? 'f32' : kt(e.t), e.v);
      case 'param':
        return this.args[e.i]!;
      case 'local':
        return v(this.names.get(e.id)!, kt(e.t));
      case 'un': {
        const a = this.expr(e.a);
        if (e.op === 'not') return not(a);
        if (e.op === 'bitnot') return bin('bitxor', a, c.i32(-1));
        return un('neg', a);
      }
      case 'bin':
        return this.binary(e.op, this.expr(e.a), this.expr(e.b));
      case 'sel':
        return select(this.expr(e.c), this.expr(e.a), this.expr(e.b));
      case 'cast': {
        const a = this.expr(e.a);
        if (e.to === 'f16') {
          const x = e.a.t === 'f32' ? a : convert(a, DTYPE_OF[e.a.t], 'f32');
          // rounded through f16 where the device computes in f16; else (no shader-f16) kept in f32
          return this.sub.caps.f16 ? cast('f32', cast('f16', x)) : x;
        }
        return convert(a, DTYPE_OF[e.a.t], DTYPE_OF[e.t]);
      }
      case 'call':
        return this.call(
          e.fn,
          e.args.map((a) => this.expr(a)),
        );
    }
  }

  binary(op: DBin, a: Expr, b: Expr): Expr {
    switch (op) {
      case 'pow':
        return BINARY['pow']!(a, b, this.sub);
      case 'mod':
        // JS % is C fmod on floats; on integers a zero divisor gives 0 (JS: NaN — keep divisors nonzero)
        if (a.type === 'f32') return bin('mod', a, b);
        return select(
          bin('eq', b, c.of(b.type, 0)),
          c.of(a.type, 0),
          bin('mod', a, select(bin('eq', b, c.of(b.type, 0)), c.of(b.type, 1), b)),
        );
      case 'and':
      case 'or':
      case 'bitand':
      case 'bitor':
      case 'bitxor':
      case 'add':
      case 'sub':
      case 'mul':
      case 'div':
      case 'lt':
      case 'le':
      case 'gt':
      case 'ge':
      case 'eq':
      case 'ne':
        return bin(op, a, b);
    }
  }

  call(fn: string, xs: Expr[]): Expr {
    const [x, y, z] = xs;
    const isF = x!.type === 'f32';
    switch (fn) {
      case 'rsqrt':
        return div(c.f32(1), un('sqrt', x!));
      case 'round':
        return un('floor', add(x!, c.f32(0.5)));
      case 'trunc':
        return un('trunc', x!);
      case 'abs':
        return un('abs', x!);
      case 'sign':
        return UNARY['sign']!(x!, this.sub);
      case 'min':
      case 'max':
        return xs.reduce((a, b) => (isF ? nanMax(a, b, fn === 'max') : bin(fn, a, b)));
      case 'clamp':
        return isF ? nanMax(nanMax(x!, y!, true), z!, false) : bin('min', bin('max', x!, y!), z!);
      case 'pow':
        return BINARY['pow']!(x!, y!, this.sub);
      case 'idiv':
        return BINARY['div']!(x!, y!, this.sub);
    }
    const u = UNARY[fn];
    if (u) return u(x!, this.sub);
    throw new Error(`DSL intrinsic ${fn} has no kernel expression`);
  }
}

const kt = (t: VType): KType => t;

function countReturns(ss: readonly DStmt[]): number {
  let n = 0;
  for (const s of ss) {
    if (s.k === 'return') n++;
    else if (s.k === 'if') n += countReturns(s.then) + countReturns(s.else);
    else if (s.k === 'for') n += countReturns(s.body);
  }
  return n;
}

/**
 * Emit `fn` applied to `args` (compute-type expressions, one per parameter) into `kb`; returns the result's
 * expression (in the result's compute type: f32 for f16).
 */
export function emitDsl(fn: DslFunction, kb: KernelBuilder, args: readonly Expr[], ctx: LowerCtx): Expr {
  // each argument is read once (a load or an interior value), however often the body names it
  const bound = args.map((a) => kb.let('p', a));
  return new Emitter(fn, kb, bound, ctx).run();
}
