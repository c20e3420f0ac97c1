/**
 * DSL parser and type checker: a scalar TypeScript function (source text, or a function object's `.toString()`) is
 * parsed with ts-morph and checked into the typed AST of ast.ts. Every rejection is a `DslError` at the user's line
 * and column (1-based; `file` / `line` / `column` options place the source inside the user's file).
 *
 * Typing rules (docs/guides/custom-ops.md):
 * - values are f32, i32, u32 or bool (an f16 parameter computes in f32); no implicit conversions between them:
 *   `f32(i)`, `i32(x)`, `u32(x)`, `bool(x)`, `f16(x)` convert;
 * - a bare number literal takes the type its context asks for (an integer literal may become i32 / u32); with no
 *   context (`let acc = 0`) it is f32; `const k = 3` keeps k a literal;
 * - `/` and `**` are float-only (`idiv(a, b)` divides integers), `&&` `||` `!` bool-only, `&` `|` `^` `~` i32-only;
 * - `for (let i = A; i < B; i++)` needs constant A, B (and step); `i` is i32 and read-only.
 */
import { Node, Project, SyntaxKind, ts, type SourceFile } from 'ts-morph';
import {
  DSL_TYPES,
  DslError,
  valueType,
  type DBin,
  type DExpr,
  type DslFunction,
  type DslParam,
  type DslType,
  type DStmt,
  type VType,
} from './ast.js';
import { INTRINSICS } from './intrinsics.js';

export interface ParseOptions {
  /** File name errors are reported in (default `<dsl>`). */
  file?: string;
  /** Line of the user's file where the source starts (1-based, default 1). */
  line?: number;
  /** Column of the user's file where the source's first line starts (1-based, default 1). */
  column?: number;
  /** Parameter types where the source has no annotations (a compiled function's `.toString()` has none). */
  inputs?: readonly DslType[];
  /** Result type where the source has no return annotation. */
  output?: DslType;
  /** Op name, for error locations. */
  op?: string;
  /**
   * Values of outer names the function reads (a closure's `alpha`, a module constant): numbers take their context's
   * type as literals do, booleans are bool.
   */
  constants?: Readonly<Record<string, number | boolean>>;
}

/** Most iterations a constant loop may run (it is unrolled by no one, but a kernel thread runs it per element). */
export const MAX_LOOP_ITERATIONS = 4096;

const PREFIX = 'const __kiln_dsl = (\n';
let project: Project | undefined;
let fileCounter = 0;

type Binding =
  | { kind: 'param'; i: number; t: VType }
  | { kind: 'local'; id: number; t: VType; mutable: boolean; loopVar?: boolean }
  | { kind: 'const'; lit: DExpr };

class Scope {
  private readonly names = new Map<string, Binding>();
  constructor(readonly parent?: Scope) {}
  get(n: string): Binding | undefined {
    return this.names.get(n) ?? this.parent?.get(n);
  }
  has(n: string): boolean {
    return this.names.has(n);
  }
  set(n: string, b: Binding): void {
    this.names.set(n, b);
  }
}

/** Float intrinsics of one float argument (DSL names; `Math.` spellings map here too). */
const FLOAT_UNARY = new Set([
  ...['exp', 'log', 'sqrt', 'rsqrt', 'tanh', 'erf', 'sigmoid', 'relu', 'silu', 'gelu'],
  ...['sin', 'cos', 'tan', 'asin', 'acos', 'atan', 'floor', 'ceil', 'trunc', 'round'],
]);
const CASTS = new Set<string>(DSL_TYPES);
/** Every callable DSL name. */
export const INTRINSIC_NAMES: ReadonlySet<string> = new Set([
  ...FLOAT_UNARY,
  ...CASTS,
  ...['abs', 'sign', 'min', 'max', 'clamp', 'pow', 'select', 'idiv'],
]);
/** `Math.<name>` functions the DSL knows, as DSL intrinsics. */
const MATH_FNS: Readonly<Record<string, string>> = {
  ...Object.fromEntries(
    ['exp', 'log', 'sqrt', 'tanh', 'abs', 'floor', 'ceil', 'trunc', 'round', 'sign', 'pow', 'min', 'max'].map((n) => [
      n,
      n,
    ]),
  ),
  ...Object.fromEntries(['sin', 'cos', 'tan', 'asin', 'acos', 'atan'].map((n) => [n, n])),
  fround: 'f32',
};
const MATH_CONSTS: Readonly<Record<string, number>> = {
  PI: Math.PI,
  E: Math.E,
  LN2: Math.LN2,
  LN10: Math.LN10,
  LOG2E: Math.LOG2E,
  LOG10E: Math.LOG10E,
  SQRT2: Math.SQRT2,
  SQRT1_2: Math.SQRT1_2,
};

const BIN_OPS: Partial<Record<SyntaxKind, DBin>> = {
  [SyntaxKind.PlusToken]: 'add',
  [SyntaxKind.MinusToken]: 'sub',
  [SyntaxKind.AsteriskToken]: 'mul',
  [SyntaxKind.SlashToken]: 'div',
  [SyntaxKind.PercentToken]: 'mod',
  [SyntaxKind.AsteriskAsteriskToken]: 'pow',
  [SyntaxKind.LessThanToken]: 'lt',
  [SyntaxKind.LessThanEqualsToken]: 'le',
  [SyntaxKind.GreaterThanToken]: 'gt',
  [SyntaxKind.GreaterThanEqualsToken]: 'ge',
  [SyntaxKind.EqualsEqualsEqualsToken]: 'eq',
  [SyntaxKind.EqualsEqualsToken]: 'eq',
  [SyntaxKind.ExclamationEqualsEqualsToken]: 'ne',
  [SyntaxKind.ExclamationEqualsToken]: 'ne',
  [SyntaxKind.AmpersandAmpersandToken]: 'and',
  [SyntaxKind.BarBarToken]: 'or',
  [SyntaxKind.AmpersandToken]: 'bitand',
  [SyntaxKind.BarToken]: 'bitor',
  [SyntaxKind.CaretToken]: 'bitxor',
};
const COMPOUND: Partial<Record<SyntaxKind, DBin>> = {
  [SyntaxKind.PlusEqualsToken]: 'add',
  [SyntaxKind.MinusEqualsToken]: 'sub',
  [SyntaxKind.AsteriskEqualsToken]: 'mul',
  [SyntaxKind.SlashEqualsToken]: 'div',
  [SyntaxKind.PercentEqualsToken]: 'mod',
};
const OP_TEXT: Record<DBin, string> = {
  add: '+',
  sub: '-',
  mul: '*',
  div: '/',
  mod: '%',
  pow: '**',
  lt: '<',
  le: '<=',
  gt: '>',
  ge: '>=',
  eq: '===',
  ne: '!==',
  and: '&&',
  or: '||',
  bitand: '&',
  bitor: '|',
  bitxor: '^',
};

/** Readable names of unsupported syntax kinds. */
function kindName(n: Node): string {
  const k = n.getKind();
  const names: Partial<Record<SyntaxKind, string>> = {
    [SyntaxKind.WhileStatement]: 'while loop',
    [SyntaxKind.DoStatement]: 'do-while loop',
    [SyntaxKind.ForInStatement]: 'for-in loop',
    [SyntaxKind.ForOfStatement]: 'for-of loop',
    [SyntaxKind.SwitchStatement]: 'switch statement',
    [SyntaxKind.BreakStatement]: 'break',
    [SyntaxKind.ContinueStatement]: 'continue',
    [SyntaxKind.ThrowStatement]: 'throw',
    [SyntaxKind.TryStatement]: 'try statement',
    [SyntaxKind.FunctionDeclaration]: 'nested function',
    [SyntaxKind.ClassDeclaration]: 'class',
    [SyntaxKind.ArrowFunction]: 'nested function',
    [SyntaxKind.FunctionExpression]: 'nested function',
    [SyntaxKind.StringLiteral]: 'string literal',
    [SyntaxKind.NoSubstitutionTemplateLiteral]: 'template literal',
    [SyntaxKind.TemplateExpression]: 'template literal',
    [SyntaxKind.ArrayLiteralExpression]: 'array literal',
    [SyntaxKind.ObjectLiteralExpression]: 'object literal',
    [SyntaxKind.ElementAccessExpression]: 'indexing',
    [SyntaxKind.NewExpression]: 'new',
    [SyntaxKind.AsExpression]: "'as' cast (convert with f32(x), i32(x) …)",
    [SyntaxKind.TypeOfExpression]: 'typeof',
    [SyntaxKind.NullKeyword]: 'null',
    [SyntaxKind.ThisKeyword]: 'this',
  };
  return names[k] ?? n.getKindName();
}

class Checker {
  readonly locals: VType[] = [];
  result: DslType | undefined;
  constructor(
    private readonly sf: SourceFile,
    private readonly opts: ParseOptions,
    private readonly file: string,
  ) {}

  fail(n: Node | number, message: string, code: 'parse' | 'dtype' | 'unsupported' | 'limit' = 'unsupported'): never {
    const pos = typeof n === 'number' ? n : n.getStart();
    const lc = this.sf.getLineAndColumnAtPos(Math.min(pos, this.sf.getEnd()));
    throw located(code, message, lc.line - 1, lc.column, this.opts, this.file);
  }

  // ---- types ----

  typeOf(n: Node): DslType {
    const text = n.getText().trim();
    const last = text.split('.').pop()!;
    if (last === 'number') return 'f32';
    if (last === 'boolean') return 'bool';
    if ((DSL_TYPES as readonly string[]).includes(last)) return last as DslType;
    return this.fail(n, `unknown type '${text}' (DSL types: f32, f16, i32, u32, bool)`, 'dtype');
  }

  /** `e` as type `t`: a flexible literal adapts, anything else must already have it. */
  coerce(e: DExpr, t: VType, n: Node, what: string): DExpr {
    if (e.k === 'lit' && e.flex) {
      if (t === 'bool') this.fail(n, `${what}: a number where bool is expected`, 'dtype');
      if ((t === 'i32' || t === 'u32') && !Number.isInteger(e.v)) {
        this.fail(n, `${what}: ${e.v} is not an integer (${t} expected)`, 'dtype');
      }
      if (t === 'u32' && e.v < 0) this.fail(n, `${what}: ${e.v} is negative (u32 expected)`, 'dtype');
      return { k: 'lit', t, v: e.v };
    }
    if (e.t !== t) this.fail(n, `${what}: type mismatch, ${e.t} where ${t} is expected${hint(e.t, t)}`, 'dtype');
    return e;
  }

  /** A value whose type is fixed now (a flexible literal becomes f32). */
  fix(e: DExpr): DExpr {
    return e.k === 'lit' && e.flex ? { k: 'lit', t: 'f32', v: e.v } : e;
  }

  /** Bring two operands to one type. */
  unify(a: DExpr, b: DExpr, n: Node, what: string): [DExpr, DExpr] {
    const fa = a.k === 'lit' && a.flex;
    const fb = b.k === 'lit' && b.flex;
    if (fa && fb) return [a, b];
    if (fa) return [this.coerce(a, b.t, n, what), b];
    if (fb) return [a, this.coerce(b, a.t, n, what)];
    if (a.t !== b.t) this.fail(n, `${what}: type mismatch, ${a.t} and ${b.t}${hint(a.t, b.t)}`, 'dtype');
    return [a, b];
  }

  // ---- expressions ----

  expr(n: Node, s: Scope): DExpr {
    if (Node.isNumericLiteral(n)) return { k: 'lit', t: 'f32', v: n.getLiteralValue(), flex: true };
    if (n.getKind() === SyntaxKind.TrueKeyword) return { k: 'lit', t: 'bool', v: 1 };
    if (n.getKind() === SyntaxKind.FalseKeyword) return { k: 'lit', t: 'bool', v: 0 };
    if (Node.isParenthesizedExpression(n)) return this.expr(n.getExpression(), s);
    if (Node.isIdentifier(n)) return this.name(n, s);
    if (Node.isPrefixUnaryExpression(n)) return this.prefix(n, s);
    if (Node.isBinaryExpression(n)) return this.binary(n, s);
    if (Node.isConditionalExpression(n)) {
      const c = this.coerce(this.expr(n.getCondition(), s), 'bool', n.getCondition(), 'condition of ?:');
      const [a, b] = this.unify(this.expr(n.getWhenTrue(), s), this.expr(n.getWhenFalse(), s), n, 'branches of ?:');
      const [fa, fb] = a.k === 'lit' && a.flex ? [this.fix(a), this.coerce(b, 'f32', n, 'branches of ?:')] : [a, b];
      return { k: 'sel', t: fa.t, c, a: fa, b: fb };
    }
    if (Node.isCallExpression(n)) return this.call(n, s);
    if (Node.isPropertyAccessExpression(n)) {
      const obj = n.getExpression();
      if (Node.isIdentifier(obj) && obj.getText() === 'Math' && n.getName() in MATH_CONSTS) {
        return { k: 'lit', t: 'f32', v: MATH_CONSTS[n.getName()]!, flex: true };
      }
      return this.fail(n, `unknown value '${n.getText()}'`);
    }
    if (Node.isPostfixUnaryExpression(n) || (Node.isBinaryExpression(n) && isAssignment(n))) {
      return this.fail(n, 'assignment inside an expression (assign in a statement of its own)');
    }
    return this.fail(n, `unsupported syntax: ${kindName(n)}`);
  }

  name(n: Node, s: Scope): DExpr {
    const id = n.getText();
    const b = s.get(id);
    if (b?.kind === 'param') return { k: 'param', t: b.t, i: b.i };
    if (b?.kind === 'local') return { k: 'local', t: b.t, id: b.id };
    if (b?.kind === 'const') return b.lit;
    if (id === 'NaN') return { k: 'lit', t: 'f32', v: NaN, flex: true };
    if (id === 'Infinity') return { k: 'lit', t: 'f32', v: Infinity, flex: true };
    if (INTRINSIC_NAMES.has(id)) return this.fail(n, `intrinsic '${id}' used as a value (call it)`);
    return this.fail(n, `unknown name '${id}' (an outer value goes in the constants option)`);
  }

  prefix(n: Node, s: Scope): DExpr {
    const u = n as unknown as { getOperatorToken(): SyntaxKind; getOperand(): Node };
    const op = u.getOperatorToken();
    const a = this.expr(u.getOperand(), s);
    switch (op) {
      case SyntaxKind.MinusToken:
        if (a.k === 'lit' && a.flex) return { ...a, v: -a.v };
        if (a.t === 'bool' || a.t === 'u32') this.fail(n, `unary '-' on ${a.t}`, 'dtype');
        return { k: 'un', t: a.t, op: 'neg', a };
      case SyntaxKind.PlusToken:
        if (a.t === 'bool') this.fail(n, "unary '+' on bool (use f32(b) / i32(b))", 'dtype');
        return a;
      case SyntaxKind.ExclamationToken:
        return { k: 'un', t: 'bool', op: 'not', a: this.coerce(a, 'bool', n, "operand of '!'") };
      case SyntaxKind.TildeToken:
        return { k: 'un', t: 'i32', op: 'bitnot', a: this.coerce(a, 'i32', n, "operand of '~'") };
    }
    return this.fail(n, `unsupported syntax: prefix '${ts.tokenToString(op) ?? op}' here`);
  }

  binary(n: Node, s: Scope): DExpr {
    const be = n as Node & { getLeft(): Node; getRight(): Node; getOperatorToken(): Node };
    const tok = be.getOperatorToken();
    if (isAssignment(n)) return this.fail(n, 'assignment inside an expression (assign in a statement of its own)');
    const op = BIN_OPS[tok.getKind()];
    if (!op) {
      if (tok.getKind() === SyntaxKind.CommaToken) return this.fail(tok, "unsupported syntax: ',' operator");
      return this.fail(tok, `unsupported operator '${tok.getText()}'`);
    }
    return this.binop(op, this.expr(be.getLeft(), s), this.expr(be.getRight(), s), tok);
  }

  binop(op: DBin, a0: DExpr, b0: DExpr, n: Node): DExpr {
    const what = `operands of '${OP_TEXT[op]}'`;
    if (op === 'and' || op === 'or') {
      const a = this.coerce(a0, 'bool', n, what);
      const b = this.coerce(b0, 'bool', n, what);
      return { k: 'bin', t: 'bool', op, a, b };
    }
    let [a, b] = this.unify(a0, b0, n, what);
    if (a.k === 'lit' && a.flex && b.k === 'lit' && b.flex) {
      const v = foldFlex(op, a.v, b.v);
      if (v !== undefined) return typeof v === 'boolean' ? { k: 'lit', t: 'bool', v: v ? 1 : 0 } : { ...a, v };
      [a, b] = [this.fix(a), this.fix(b)];
    }
    const t = a.t;
    const cmp = op === 'lt' || op === 'le' || op === 'gt' || op === 'ge' || op === 'eq' || op === 'ne';
    if (cmp) {
      if (t === 'bool' && op !== 'eq' && op !== 'ne') this.fail(n, `'${OP_TEXT[op]}' on bool`, 'dtype');
      return { k: 'bin', t: 'bool', op, a, b };
    }
    if (t === 'bool') this.fail(n, `'${OP_TEXT[op]}' on bool`, 'dtype');
    if ((op === 'div' || op === 'pow') && t !== 'f32') {
      this.fail(
        n,
        op === 'div'
          ? `integer '/' (${t}): JS would not truncate; use idiv(a, b), or convert with f32(x)`
          : `'**' on ${t} (float only)`,
        'dtype',
      );
    }
    if ((op === 'bitand' || op === 'bitor' || op === 'bitxor') && t !== 'i32') {
      this.fail(n, `'${OP_TEXT[op]}' on ${t} (bitwise operators take i32)`, 'dtype');
    }
    return { k: 'bin', t, op, a, b };
  }

  /** The intrinsic a call's callee names: `f(…)`, `Math.f(…)`, `ns.f(…)` (an imported namespace) or `(0, ns.f)(…)`. */
  callee(c: Node, s: Scope): string {
    let e = c;
    while (Node.isParenthesizedExpression(e)) {
      const inner = e.getExpression();
      // `(0, ns.f)`: how bundlers call an imported function without a `this`
      if (Node.isBinaryExpression(inner) && inner.getOperatorToken().getKind() === SyntaxKind.CommaToken) {
        e = inner.getRight();
      } else e = inner;
    }
    if (Node.isIdentifier(e)) {
      const id = e.getText();
      if (s.get(id)) return this.fail(e, `'${id}' is a value, not a function`);
      if (INTRINSIC_NAMES.has(id)) return id;
      return this.fail(e, `unknown function '${id}'`);
    }
    if (Node.isPropertyAccessExpression(e)) {
      const obj = e.getExpression();
      const name = e.getName();
      if (Node.isIdentifier(obj) && obj.getText() === 'Math') {
        const m = MATH_FNS[name];
        if (m) return m;
        return this.fail(e, `unknown function 'Math.${name}'`);
      }
      if (Node.isIdentifier(obj) && !s.get(obj.getText()) && INTRINSIC_NAMES.has(name)) return name;
      return this.fail(e, `unknown function '${e.getText()}'`);
    }
    return this.fail(c, `unsupported callee: ${kindName(c)}`);
  }

  call(n: Node, s: Scope): DExpr {
    const ce = n as Node & { getExpression(): Node; getArguments(): Node[] };
    const fn = this.callee(ce.getExpression(), s);
    const argNodes = ce.getArguments();
    const args = argNodes.map((a) => this.expr(a, s));
    const arity = (k: number | [number, number]) => {
      const [lo, hi] = typeof k === 'number' ? [k, k] : k;
      if (args.length < lo || args.length > hi) {
        this.fail(n, `${fn}() takes ${lo === hi ? lo : `${lo}..${hi}`} argument(s), got ${args.length}`, 'dtype');
      }
    };
    // an intrinsic of literals is a literal (`abs(5)`, `Math.sqrt(2)`): it still takes its context's type
    if (!CASTS.has(fn) && fn !== 'select' && args.length && args.every((a) => a.k === 'lit' && a.flex)) {
      const r = (INTRINSICS[fn] as (...xs: number[]) => unknown)(...args.map((a) => (a as { v: number }).v));
      if (typeof r === 'number') return { k: 'lit', t: 'f32', v: r, flex: true };
    }
    if (CASTS.has(fn)) {
      arity(1);
      const to = fn as DslType;
      return { k: 'cast', t: valueType(to), to, a: this.fix(args[0]!) };
    }
    if (FLOAT_UNARY.has(fn)) {
      arity(1);
      return { k: 'call', t: 'f32', fn, args: [this.coerce(args[0]!, 'f32', argNodes[0]!, `argument of ${fn}()`)] };
    }
    const same = (xs: DExpr[], what: string): DExpr[] => {
      let t: VType | undefined;
      xs.forEach((x) => {
        if (!(x.k === 'lit' && x.flex)) t ??= x.t;
      });
      const tt = t ?? 'f32';
      return xs.map((x, i) => this.coerce(x, tt, argNodes[i]!, what));
    };
    switch (fn) {
      case 'abs':
      case 'sign': {
        arity(1);
        const [a] = same(args, `argument of ${fn}()`);
        if (a!.t === 'bool' || (a!.t === 'u32' && fn === 'sign')) this.fail(n, `${fn}() of ${a!.t}`, 'dtype');
        return { k: 'call', t: a!.t, fn, args: [a!] };
      }
      case 'min':
      case 'max': {
        arity([2, 16]);
        const xs = same(args, `arguments of ${fn}()`);
        if (xs[0]!.t === 'bool') this.fail(n, `${fn}() of bool`, 'dtype');
        return { k: 'call', t: xs[0]!.t, fn, args: xs };
      }
      case 'clamp': {
        arity(3);
        const xs = same(args, 'arguments of clamp()');
        if (xs[0]!.t === 'bool') this.fail(n, 'clamp() of bool', 'dtype');
        return { k: 'call', t: xs[0]!.t, fn, args: xs };
      }
      case 'pow': {
        arity(2);
        const xs = args.map((a, i) => this.coerce(a, 'f32', argNodes[i]!, 'arguments of pow()'));
        return { k: 'call', t: 'f32', fn, args: xs };
      }
      case 'idiv': {
        arity(2);
        const xs = args.map((a, i) => this.coerce(a, 'i32', argNodes[i]!, 'arguments of idiv()'));
        return { k: 'call', t: 'i32', fn, args: xs };
      }
      case 'select': {
        arity(3);
        const c = this.coerce(args[0]!, 'bool', argNodes[0]!, 'condition of select()');
        const [a, b] = same(args.slice(1), 'operands of select()');
        return { k: 'sel', t: a!.t, c, a: a!, b: b! };
      }
    }
    return this.fail(n, `unknown function '${fn}'`);
  }

  // ---- statements ----

  block(stmts: readonly Node[], s: Scope): DStmt[] {
    const out: DStmt[] = [];
    let returned = false;
    for (const st of stmts) {
      if (st.getKind() === SyntaxKind.EmptyStatement) continue;
      if (returned) this.fail(st, 'unreachable statement after return');
      const r = this.stmt(st, s);
      out.push(...r);
      if (alwaysReturns(r)) returned = true;
    }
    return out;
  }

  body(n: Node, s: Scope): DStmt[] {
    return Node.isBlock(n) ? this.block(n.getStatements(), new Scope(s)) : this.block([n], new Scope(s));
  }

  declare(s: Scope, nameNode: Node, b: Binding): void {
    const id = nameNode.getText();
    if (s.has(id)) this.fail(nameNode, `'${id}' is already declared in this block`);
    if (INTRINSIC_NAMES.has(id) || id === 'Math') this.fail(nameNode, `'${id}' shadows a DSL intrinsic`);
    s.set(id, b);
  }

  newLocal(t: VType): number {
    this.locals.push(t);
    return this.locals.length - 1;
  }

  stmt(n: Node, s: Scope): DStmt[] {
    if (Node.isBlock(n)) return this.block(n.getStatements(), new Scope(s));
    if (Node.isReturnStatement(n)) {
      const e = n.getExpression();
      if (!e) return this.fail(n, 'return without a value');
      const v = this.expr(e, s);
      if (this.result) return [{ k: 'return', value: this.coerce(v, valueType(this.result), e, 'returned value') }];
      const fixed = this.fix(v);
      this.result = fixed.t;
      return [{ k: 'return', value: fixed }];
    }
    if (Node.isVariableStatement(n)) {
      const kind = n.getDeclarationKind();
      if (kind !== 'const' && kind !== 'let') this.fail(n, `'${kind}' declaration (use let or const)`);
      const out: DStmt[] = [];
      for (const d of n.getDeclarations()) {
        const nameNode = d.getNameNode();
        if (!Node.isIdentifier(nameNode)) this.fail(nameNode, 'destructuring declaration');
        const init = d.getInitializer();
        if (!init) return this.fail(d, `'${nameNode.getText()}' declared without a value`);
        const tn = d.getTypeNode();
        const want = tn ? valueType(this.typeOf(tn)) : undefined;
        let v = this.expr(init, s);
        if (kind === 'const' && !want && v.k === 'lit' && v.flex) {
          this.declare(s, nameNode, { kind: 'const', lit: v });
          continue;
        }
        v = want ? this.coerce(v, want, init, `value of '${nameNode.getText()}'`) : this.fix(v);
        const id = this.newLocal(v.t);
        out.push({ k: 'decl', id, t: v.t, init: v, mutable: kind === 'let' });
        this.declare(s, nameNode, { kind: 'local', id, t: v.t, mutable: kind === 'let' });
      }
      return out;
    }
    if (Node.isExpressionStatement(n)) return [this.assignment(n.getExpression(), s)];
    if (Node.isIfStatement(n)) {
      const c = this.coerce(this.expr(n.getExpression(), s), 'bool', n.getExpression(), 'if condition');
      const then = this.body(n.getThenStatement(), s);
      const el = n.getElseStatement();
      return [{ k: 'if', c, then, else: el ? this.body(el, s) : [] }];
    }
    if (Node.isForStatement(n)) return [this.forLoop(n, s)];
    return this.fail(n, `unsupported statement: ${kindName(n)}`);
  }

  target(n: Node, s: Scope): { id: number; t: VType } {
    if (!Node.isIdentifier(n)) return this.fail(n, `assignment to ${kindName(n)} (only local variables)`);
    const b = s.get(n.getText());
    if (!b) return this.fail(n, `unknown name '${n.getText()}'`);
    if (b.kind === 'param') return this.fail(n, `cannot assign to parameter '${n.getText()}'`);
    if (b.kind === 'const' || (b.kind === 'local' && !b.mutable)) {
      return this.fail(n, `cannot assign to const '${n.getText()}'`);
    }
    if (b.loopVar) return this.fail(n, `cannot assign to loop variable '${n.getText()}'`);
    return { id: b.id, t: b.t };
  }

  assignment(e: Node, s: Scope): DStmt {
    if (Node.isBinaryExpression(e) && isAssignment(e)) {
      const tgt = this.target(e.getLeft(), s);
      const kind = e.getOperatorToken().getKind();
      let v = this.expr(e.getRight(), s);
      if (kind !== SyntaxKind.EqualsToken) {
        const op = COMPOUND[kind];
        if (!op) return this.fail(e.getOperatorToken(), `unsupported operator '${e.getOperatorToken().getText()}'`);
        v = this.binop(op, { k: 'local', t: tgt.t, id: tgt.id }, v, e.getOperatorToken());
      }
      return { k: 'assign', id: tgt.id, value: this.coerce(v, tgt.t, e.getRight(), 'assigned value') };
    }
    if (Node.isPostfixUnaryExpression(e) || Node.isPrefixUnaryExpression(e)) {
      const op = e.getOperatorToken();
      if (op === SyntaxKind.PlusPlusToken || op === SyntaxKind.MinusMinusToken) {
        const tgt = this.target(e.getOperand(), s);
        if (tgt.t === 'bool') this.fail(e, `'${ts.tokenToString(op)}' on bool`, 'dtype');
        const one: DExpr = { k: 'lit', t: tgt.t, v: 1 };
        const cur: DExpr = { k: 'local', t: tgt.t, id: tgt.id };
        return {
          k: 'assign',
          id: tgt.id,
          value: { k: 'bin', t: tgt.t, op: op === SyntaxKind.PlusPlusToken ? 'add' : 'sub', a: cur, b: one },
        };
      }
    }
    return this.fail(e, `expression statement has no effect (${kindName(e)})`);
  }

  /** A compile-time integer (a literal or a const bound to one). */
  constInt(n: Node, s: Scope, what: string): number {
    const e = this.expr(n, s);
    if (e.k !== 'lit' || !Number.isInteger(e.v) || e.t === 'bool') {
      return this.fail(n, `${what} must be a constant integer`);
    }
    return e.v;
  }

  forLoop(n: Node, s: Scope): DStmt {
    const f = n as Node & {
      getInitializer(): Node | undefined;
      getCondition(): Node | undefined;
      getIncrementor(): Node | undefined;
      getStatement(): Node;
    };
    const init = f.getInitializer();
    const shape = 'loops must read for (let i = A; i < B; i++) with constant A and B';
    if (!init || !Node.isVariableDeclarationList(init) || init.getDeclarations().length !== 1) {
      return this.fail(init ?? n, shape);
    }
    if (init.getDeclarationKind() !== 'let')
      this.fail(init, `loop variable declared with '${init.getDeclarationKind()}' (use let)`);
    const d = init.getDeclarations()[0]!;
    const nameNode = d.getNameNode();
    if (!Node.isIdentifier(nameNode) || !d.getInitializer()) return this.fail(d, shape);
    if (d.getTypeNode() && this.typeOf(d.getTypeNode()!) !== 'i32')
      this.fail(d.getTypeNode()!, 'a loop variable is i32', 'dtype');
    const name = nameNode.getText();
    const start = this.constInt(d.getInitializer()!, s, 'loop start');
    const cond = f.getCondition();
    if (!cond || !Node.isBinaryExpression(cond) || cond.getLeft().getText() !== name)
      return this.fail(cond ?? n, shape);
    const ck = cond.getOperatorToken().getKind();
    if (ck !== SyntaxKind.LessThanToken && ck !== SyntaxKind.LessThanEqualsToken) {
      return this.fail(cond.getOperatorToken(), `loop condition must be ${name} < B or ${name} <= B`);
    }
    const bound = this.constInt(cond.getRight(), s, 'loop bound');
    const end = ck === SyntaxKind.LessThanEqualsToken ? bound + 1 : bound;
    const inc = f.getIncrementor();
    let step: number | undefined;
    if (inc && (Node.isPostfixUnaryExpression(inc) || Node.isPrefixUnaryExpression(inc))) {
      if (inc.getOperatorToken() === SyntaxKind.PlusPlusToken && inc.getOperand().getText() === name) step = 1;
    } else if (inc && Node.isBinaryExpression(inc) && inc.getLeft().getText() === name) {
      if (inc.getOperatorToken().getKind() === SyntaxKind.PlusEqualsToken)
        step = this.constInt(inc.getRight(), s, 'loop step');
    }
    if (step === undefined || step <= 0)
      return this.fail(inc ?? n, `loop step must be ${name}++ or ${name} += K (K > 0)`);
    const trips = Math.max(0, Math.ceil((end - start) / step));
    if (trips > MAX_LOOP_ITERATIONS) {
      this.fail(n, `loop runs ${trips} iterations, more than the limit of ${MAX_LOOP_ITERATIONS}`, 'limit');
    }
    const inner = new Scope(s);
    const id = this.newLocal('i32');
    inner.set(name, { kind: 'local', id, t: 'i32', mutable: false, loopVar: true });
    const body = this.body(f.getStatement(), inner);
    return { k: 'for', id, start, end, step, body };
  }
}

function isAssignment(n: Node): boolean {
  if (!Node.isBinaryExpression(n)) return false;
  const k = n.getOperatorToken().getKind();
  return k >= SyntaxKind.FirstAssignment && k <= SyntaxKind.LastAssignment;
}

const hint = (a: VType, b: VType) =>
  a !== 'bool' && b !== 'bool' ? ` (convert one side explicitly: ${a}(…) or ${b}(…))` : '';

function foldFlex(op: DBin, a: number, b: number): number | boolean | undefined {
  switch (op) {
    case 'add':
      return a + b;
    case 'sub':
      return a - b;
    case 'mul':
      return a * b;
    case 'div':
      return a / b;
    case 'mod':
      return a % b;
    case 'pow':
      return a ** b;
    case 'lt':
      return a < b;
    case 'le':
      return a <= b;
    case 'gt':
      return a > b;
    case 'ge':
      return a >= b;
    case 'eq':
      return a === b;
    case 'ne':
      return a !== b;
  }
  // bitwise operators on integer literals fold as JS does (to 32-bit integers)
  if (!Number.isInteger(a) || !Number.isInteger(b)) return undefined;
  return op === 'bitand' ? a & b : op === 'bitor' ? a | b : op === 'bitxor' ? a ^ b : undefined;
}

/** The statements return on every path. */
export function alwaysReturns(ss: readonly DStmt[]): boolean {
  return ss.some((s) => s.k === 'return' || (s.k === 'if' && alwaysReturns(s.then) && alwaysReturns(s.else)));
}

function located(
  code: 'parse' | 'dtype' | 'unsupported' | 'limit',
  message: string,
  line: number,
  column: number,
  opts: ParseOptions,
  file: string,
): DslError {
  const l = line + (opts.line ?? 1) - 1;
  const c = column + (line === 1 ? (opts.column ?? 1) - 1 : 0);
  return new DslError(code, message, file, l, c, opts.op);
}

/**
 * A function's text as a function expression: a method's `.toString()` (`name(x) { … }`) gets `function ` in front;
 * `shift` is how many characters that moved the first line.
 */
export function asExpression(text: string): { code: string; shift: number } {
  if (/^\s*(?!function\b|async\b)[A-Za-z_$][\w$]*\s*\(/.test(text)) {
    return { code: text.replace(/^(\s*)/, '$1function '), shift: 'function '.length };
  }
  return { code: text, shift: 0 };
}

/** Parse and type-check a DSL function. */
export function parseDsl(source: string | ((...args: never[]) => unknown), opts: ParseOptions = {}): DslFunction {
  const text = typeof source === 'function' ? source.toString() : source;
  const file = opts.file ?? '<dsl>';
  const { code, shift } = asExpression(text);
  project ??= new Project({ useInMemoryFileSystem: true, compilerOptions: { target: ts.ScriptTarget.ES2022 } });
  const sf = project.createSourceFile(`/dsl${fileCounter++}.ts`, `${PREFIX}${code}\n);\n`, { overwrite: true });
  try {
    const ck = new Checker(sf, shift ? { ...opts, column: (opts.column ?? 1) - shift } : opts, file);
    const diags = (sf.compilerNode as unknown as { parseDiagnostics?: ts.Diagnostic[] }).parseDiagnostics ?? [];
    if (diags.length) {
      const d = diags[0]!;
      ck.fail(d.start ?? 0, `syntax error: ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`, 'parse');
    }
    const decl = sf.getVariableDeclarationOrThrow('__kiln_dsl');
    let fn: Node = decl.getInitializerOrThrow();
    while (Node.isParenthesizedExpression(fn)) fn = fn.getExpression();
    if (!Node.isArrowFunction(fn) && !Node.isFunctionExpression(fn)) {
      return ck.fail(fn, `expected a function, got ${kindName(fn)}`, 'parse');
    }
    if (fn.isAsync()) ck.fail(fn, 'async function');
    if (Node.isFunctionExpression(fn) && fn.isGenerator()) ck.fail(fn, 'generator function');
    if (fn.getTypeParameters().length) ck.fail(fn.getTypeParameters()[0]!, 'type parameters');
    const outer = new Scope();
    for (const [k, val] of Object.entries(opts.constants ?? {})) {
      if (!/^[A-Za-z_$][\w$]*$/.test(k) || INTRINSIC_NAMES.has(k) || k === 'Math') {
        ck.fail(fn, `constant '${k}' is not a usable name (an identifier that is no intrinsic)`);
      }
      if (typeof val !== 'number' && typeof val !== 'boolean')
        ck.fail(fn, `constant '${k}' must be a number or boolean`);
      outer.set(k, {
        kind: 'const',
        lit:
          typeof val === 'boolean'
            ? { k: 'lit', t: 'bool', v: val ? 1 : 0 }
            : { k: 'lit', t: 'f32', v: val, flex: true },
      });
    }
    const scope = new Scope(outer);
    const params: DslParam[] = [];
    if (opts.inputs && opts.inputs.length !== fn.getParameters().length) {
      ck.fail(
        fn,
        `the function takes ${fn.getParameters().length} parameter(s), inputs lists ${opts.inputs.length}`,
        'dtype',
      );
    }
    fn.getParameters().forEach((p, i) => {
      const nameNode = p.getNameNode();
      if (!Node.isIdentifier(nameNode)) ck.fail(nameNode, 'destructuring parameter');
      if (p.isRestParameter()) ck.fail(p, 'rest parameter');
      if (p.getInitializer()) ck.fail(p.getInitializer()!, 'parameter default value');
      if (p.hasQuestionToken()) ck.fail(p, 'optional parameter');
      const tn = p.getTypeNode();
      const annotated = tn ? ck.typeOf(tn) : undefined;
      const given = opts.inputs?.[i];
      if (annotated && given && annotated !== given) {
        ck.fail(tn!, `parameter '${nameNode.getText()}' is ${annotated}, inputs says ${given}`, 'dtype');
      }
      const type = annotated ?? given ?? 'f32';
      ck.declare(scope, nameNode, { kind: 'param', i, t: valueType(type) });
      params.push({ name: nameNode.getText(), type });
    });
    const rt = fn.getReturnTypeNode();
    const annotatedResult = rt ? ck.typeOf(rt) : undefined;
    if (annotatedResult && opts.output && annotatedResult !== opts.output) {
      ck.fail(rt!, `the function returns ${annotatedResult}, output says ${opts.output}`, 'dtype');
    }
    ck.result = annotatedResult ?? opts.output;
    const b = fn.getBody();
    let body: DStmt[];
    if (Node.isBlock(b)) {
      body = ck.block(b.getStatements(), scope); // the parameters' scope: a local may not redeclare one
      if (!alwaysReturns(body)) ck.fail(b.getEnd() - 1, 'the function can end without returning a value');
    } else {
      const v = ck.expr(b, scope);
      body = [{ k: 'return', value: ck.result ? ck.coerce(v, valueType(ck.result), b, 'returned value') : ck.fix(v) }];
      ck.result ??= v.k === 'lit' && v.flex ? 'f32' : v.t;
    }
    const result: DslType = ck.result ?? 'f32';
    return { params, result, body, locals: ck.locals, source: text, file };
  } finally {
    project.removeSourceFile(sf);
  }
}
