/**
 * One C-like renderer for the kernel IR. Statement structure, expression nesting and operator spelling live here;
 * a dialect (WGSL, CUDA C) overrides only what differs: types, literals, declarations, parameters, builtins,
 * barriers, math function names. A third target should cost a few hundred lines.
 */
import type { BinOp, Expr, KType, Kernel, Stmt, UnOp } from '../kir.js';

/**
 * The renderer shared by the dialects: `render(kernel)` gives the kernel's source. Subclasses supply the dialect's
 * spelling through the abstract methods below; kernels must be legalized first (`legalize`).
 */
export abstract class CLikeRenderer {
  /** Helper functions the body used (e.g. erf), emitted once before the kernel. */
  protected helpers = new Set<string>();

  abstract readonly name: string;
  /** The dialect's name of a kernel IR type (`f32`, `int`, `half` …). */
  abstract typeName(t: KType): string;
  /** A literal of type `t` (floats always with a decimal point or exponent; NaN / ±inf as the dialect spells them). */
  abstract literal(t: KType, value: number): string;
  /** Declaration of an immutable local (`let` / `const`), with the trailing `;`. */
  abstract declLet(name: string, t: KType, value: string): string;
  /** Declaration of a mutable local (`var` / a plain C declaration), with the trailing `;`. */
  abstract declVar(name: string, t: KType, value: string): string;
  /** The header of a counted loop `for (v = start; v < end; v += step)`, without the body's braces. */
  abstract forHeader(v: string, start: string, end: string, step: string): string;
  /** A thread / workgroup index builtin (u32) in the dialect's spelling. */
  abstract builtin(e: Extract<Expr, { k: 'builtin' }>): string;
  /** How the body reads the scalar uniform `name`. */
  abstract uniform(name: string): string;
  /** A value conversion of `a` from type `from` to `to`. */
  abstract castExpr(to: KType, from: KType, a: string): string;
  /** A reinterpretation of the 32 bits of `a` as type `to`. */
  abstract bitcastExpr(to: KType, from: KType, a: string): string;
  /** `cond ? a : b`, both sides evaluated. */
  abstract selectExpr(cond: string, a: string, b: string): string;
  /** A workgroup barrier (with workgroup-memory ordering), with its `;`. */
  abstract barrier(): string;
  /** A unary op or math function of `a` (type `t`), helpers registered in `helpers` where the dialect lacks one. */
  abstract unary(op: UnOp, t: KType, a: string): string;
  /** The value of `a` in the lane whose index is this lane's XOR `mask` (warp / subgroup shuffle). */
  abstract shuffleXor(t: KType, a: string, mask: number): string;
  /** The packed 4×8-bit dot product of u32 words `a`, `b` as an i32 (signed or unsigned bytes on both sides). */
  abstract dot4(signed: boolean, a: string, b: string): string;
  /** The whole translation unit for a kernel around its rendered body. */
  abstract module(k: Kernel, body: string): string;

  /**
   * The kernel's complete source in this dialect.
   *
   * @throws Error when the kernel was not legalized (a `store_packed` statement remains).
   */
  render(k: Kernel): string {
    this.helpers = new Set();
    this.locals = new Map();
    const body = this.stmts(k.body, 1);
    return this.module(k, body);
  }

  protected locals = new Map<string, KType>();

  /** Statements, each on its own line(s), indented to `depth`. */
  protected stmts(ss: readonly Stmt[], depth: number): string {
    return ss.map((s) => this.stmt(s, depth)).join('');
  }

  /** One statement (and its nested blocks) indented to `depth`. */
  protected stmt(s: Stmt, depth: number): string {
    const ind = '  '.repeat(depth);
    switch (s.k) {
      case 'let':
        this.locals.set(s.name, s.value.type);
        return `${ind}${this.declLet(s.name, s.value.type, this.expr(s.value))}\n`;
      case 'var':
        this.locals.set(s.name, s.type);
        return `${ind}${this.declVar(s.name, s.type, this.expr(s.init))}\n`;
      case 'assign':
        return `${ind}${s.name} = ${this.expr(s.value)};\n`;
      case 'store':
        return `${ind}${s.buf}[${this.index(s.index)}] = ${this.expr(s.value)};\n`;
      case 'shared_store':
        return `${ind}${s.arr}[${this.index(s.index)}] = ${this.expr(s.value)};\n`;
      case 'store_packed':
        throw new Error('store_packed must be legalized before rendering');
      case 'for':
        this.locals.set(s.v, s.start.type);
        return (
          `${ind}${this.forHeader(s.v, this.expr(s.start), this.expr(s.end), this.expr(s.step))} {\n` +
          this.stmts(s.body, depth + 1) +
          `${ind}}\n`
        );
      case 'if':
        return (
          `${ind}if (${this.expr(s.cond)}) {\n${this.stmts(s.then, depth + 1)}${ind}}` +
          (s.else && s.else.length ? ` else {\n${this.stmts(s.else, depth + 1)}${ind}}` : '') +
          '\n'
        );
      case 'barrier':
        return `${ind}${this.barrier()}\n`;
      case 'return':
        return `${ind}return;\n`;
      case 'comment':
        return `${ind}// ${s.text.replace(/\n/g, ' ')}\n`;
    }
  }

  /** Array indices are rendered as-is; dialects with unsigned-only indexing override. */
  protected index(e: Expr): string {
    return this.expr(e);
  }

  /** A binary op of rendered operands (`at`: the operands' type, `t`: the result's), fully parenthesized. */
  protected binary(op: BinOp, t: KType, a: string, b: string, at: KType): string {
    const isF = at === 'f32' || at === 'f16';
    switch (op) {
      case 'add':
        return `(${a} + ${b})`;
      case 'sub':
        return `(${a} - ${b})`;
      case 'mul':
        return `(${a} * ${b})`;
      case 'div':
        return `(${a} / ${b})`;
      case 'mod':
        return isF ? this.call2('fmod', at, a, b) : `(${a} % ${b})`;
      case 'min':
        return this.call2('min', at, a, b);
      case 'max':
        return this.call2('max', at, a, b);
      case 'pow':
        return this.call2('pow', at, a, b);
      case 'lt':
        return `(${a} < ${b})`;
      case 'le':
        return `(${a} <= ${b})`;
      case 'gt':
        return `(${a} > ${b})`;
      case 'ge':
        return `(${a} >= ${b})`;
      case 'eq':
        return `(${a} == ${b})`;
      case 'ne':
        return `(${a} != ${b})`;
      case 'and':
        return `(${a} && ${b})`;
      case 'or':
        return `(${a} || ${b})`;
      case 'bitand':
        return `(${a} & ${b})`;
      case 'bitor':
        return `(${a} | ${b})`;
      case 'bitxor':
        return `(${a} ^ ${b})`;
      case 'shl':
        return this.shift('<<', a, b);
      case 'shr':
        return this.shift('>>', a, b);
    }
    void t;
  }

  /** An f32 rounded to the nearest f16 value, as f32. */
  protected roundF16(a: string): string {
    return this.castExpr('f32', 'f16', this.castExpr('f16', 'f32', a));
  }

  /** A bit shift of `a` by `b`; dialects that need the shift amount as u32 override. */
  protected shift(op: '<<' | '>>', a: string, b: string): string {
    return `(${a} ${op} ${b})`;
  }

  /** Two-argument math function (min, max, pow, fmod) in the dialect's spelling. */
  protected abstract call2(fn: 'min' | 'max' | 'pow' | 'fmod', t: KType, a: string, b: string): string;

  /** An expression, rendered recursively (literals, locals, builtins, uniforms, loads, ops, casts, shuffles). */
  expr(e: Expr): string {
    switch (e.k) {
      case 'const':
        return this.literal(e.type, e.value);
      case 'var':
        return e.name;
      case 'builtin':
        return this.builtin(e);
      case 'uniform':
        return this.uniform(e.name);
      case 'load':
        return `${e.buf}[${this.index(e.index)}]`;
      case 'shared_load':
        return `${e.arr}[${this.index(e.index)}]`;
      case 'bin':
        return this.binary(e.op, e.type, this.expr(e.a), this.expr(e.b), e.a.type);
      case 'un':
        return this.unary(e.op, e.a.type, this.expr(e.a));
      case 'select':
        return this.selectExpr(this.expr(e.cond), this.expr(e.a), this.expr(e.b));
      case 'cast':
        // f32 → f16 → f32 is how a fused group rounds an interior f16 value: spelled so no optimizer drops it
        if (e.type === 'f32' && e.a.k === 'cast' && e.a.type === 'f16' && e.a.a.type === 'f32') {
          return this.roundF16(this.expr(e.a.a));
        }
        return this.castExpr(e.type, e.a.type, this.expr(e.a));
      case 'bitcast':
        return this.bitcastExpr(e.type, e.a.type, this.expr(e.a));
      case 'shuffle_xor':
        return this.shuffleXor(e.type, this.expr(e.a), e.mask);
      case 'dot4':
        return this.dot4(e.signed, this.expr(e.a), this.expr(e.b));
    }
  }
}

/** Shortest decimal that round-trips through f32, always with a decimal point or exponent. */
export function floatText(v: number): string {
  const f = Math.fround(v);
  let s = String(f);
  for (let p = 1; p <= 17; p++) {
    const t = f.toPrecision(p);
    if (Math.fround(Number(t)) === f) {
      s = t;
      break;
    }
  }
  if (!/[.eE]/.test(s)) s += '.0';
  return s;
}
