/**
 * Symbolic dims as expressions. A symbolic dim is a string in the IR text format: a symbol (`seq`) or integers and
 * symbols combined with + - * / and parentheses (`past+seq`, `2*seq`, `(a+b)*c`), as `dimSum` / `dimProduct` and
 * the op inferences build them. This module is the one place that parses that text: to evaluate a dim under symbol
 * bindings, or to factor a product so inference can cancel symbols. Dims stay strings in the IR, so the text
 * printer and parser round-trip them untouched.
 */
import type { Dim } from './shape.js';

export type DimExpr =
  | { readonly k: 'int'; readonly n: number }
  | { readonly k: 'sym'; readonly name: string }
  /** a ± b ± c …: terms with their signs (the first is always +). */
  | { readonly k: 'sum'; readonly terms: readonly { readonly neg: boolean; readonly e: DimExpr }[] }
  /** a · b / c …: factors, each multiplied or divided. */
  | { readonly k: 'product'; readonly factors: readonly { readonly inv: boolean; readonly e: DimExpr }[] };

const SYMBOL = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A plain symbol (no operators): the only kind of symbolic dim that binds directly to a size. */
export const isSymbol = (d: Dim): d is string => typeof d === 'string' && SYMBOL.test(d);

/** Parse a dim; throws on text that is not a dim expression. */
export function parseDim(d: Dim): DimExpr {
  if (typeof d === 'number') return { k: 'int', n: d };
  const toks = d.match(/[A-Za-z_][A-Za-z0-9_]*|\d+|[-+*/()]|\S/g) ?? [];
  let i = 0;
  const bad = (): never => {
    throw new Error(`not a dim expression: '${d}'`);
  };
  const atom = (): DimExpr => {
    const t = toks[i++] ?? bad();
    if (t === '(') {
      const e = sum();
      if (toks[i++] !== ')') bad();
      return e;
    }
    if (/^\d+$/.test(t)) return { k: 'int', n: Number(t) };
    return SYMBOL.test(t) ? { k: 'sym', name: t } : bad();
  };
  const product = (): DimExpr => {
    const factors = [{ inv: false, e: atom() }];
    while (toks[i] === '*' || toks[i] === '/') factors.push({ inv: toks[i++] === '/', e: atom() });
    return factors.length === 1 ? factors[0]!.e : { k: 'product', factors };
  };
  const sum = (): DimExpr => {
    const terms = [{ neg: false, e: product() }];
    while (toks[i] === '+' || toks[i] === '-') terms.push({ neg: toks[i++] === '-', e: product() });
    return terms.length === 1 ? terms[0]!.e : { k: 'sum', terms };
  };
  const e = sum();
  if (i !== toks.length) bad();
  return e;
}

/** Text of an expression with only the parentheses precedence needs. */
export function printDimExpr(e: DimExpr): string {
  switch (e.k) {
    case 'int':
      return String(e.n);
    case 'sym':
      return e.name;
    case 'sum':
      return e.terms
        .map(({ neg, e: t }, j) => {
          const s = neg && t.k === 'sum' ? `(${printDimExpr(t)})` : printDimExpr(t);
          return j === 0 ? s : `${neg ? '-' : '+'}${s}`;
        })
        .join('');
    case 'product':
      return e.factors
        .map(({ inv, e: f }, j) => {
          const s = f.k === 'sum' || (inv && f.k === 'product') ? `(${printDimExpr(f)})` : printDimExpr(f);
          return j === 0 ? s : `${inv ? '/' : '*'}${s}`;
        })
        .join('');
  }
}

/** Value of a dim under symbol bindings; throws on an unbound symbol. */
export function evalDim(d: Dim | DimExpr, env: Readonly<Record<string, number>> | ReadonlyMap<string, number>): number {
  const e = typeof d === 'object' ? d : parseDim(d);
  const get = (s: string) => (env instanceof Map ? env.get(s) : (env as Record<string, number>)[s]);
  const ev = (x: DimExpr): number => {
    switch (x.k) {
      case 'int':
        return x.n;
      case 'sym': {
        const v = get(x.name);
        if (v === undefined) throw new Error(`unbound symbol ${x.name} in ${printDimExpr(e)}`);
        return v;
      }
      case 'sum':
        return x.terms.reduce((acc, t) => (t.neg ? acc - ev(t.e) : acc + ev(t.e)), 0);
      case 'product':
        return x.factors.reduce((acc, f) => (f.inv ? acc / ev(f.e) : acc * ev(f.e)), 1);
    }
  };
  return ev(e);
}

/**
 * A product of dims as an integer times symbolic factors. A factor that is not a plain product (a sum, a quotient)
 * stays whole, as its canonical text, so `(a+b)*c` over `a+b` still cancels.
 */
export function dimFactors(dims: readonly Dim[]): { n: number; syms: string[] } {
  const f = { n: 1, syms: [] as string[] };
  const add = (e: DimExpr) => {
    if (e.k === 'int') f.n *= e.n;
    else if (e.k === 'product' && e.factors.every((x) => !x.inv)) e.factors.forEach((x) => add(x.e));
    else f.syms.push(printDimExpr(e));
  };
  for (const d of dims) {
    let e: DimExpr;
    try {
      e = parseDim(d);
    } catch {
      f.syms.push(d as string); // a symbol name outside the expression syntax (an ONNX dim_param like 'a.b'): opaque
      continue;
    }
    add(e);
  }
  return f;
}

/** Product of dims, symbolic when any dim is: `n*a*(b+c)`, the integer first and left out when 1. */
export function dimProduct(dims: readonly Dim[]): Dim {
  let n = 1;
  const syms: string[] = [];
  for (const d of dims) {
    if (typeof d === 'number') n *= d;
    else syms.push(d);
  }
  if (syms.length === 0) return n;
  if (n === 0) return 0;
  return [...(n === 1 ? [] : [String(n)]), ...syms.map((s) => (SYMBOL.test(s) ? s : `(${s})`))].join('*');
}

/** Sum of dims (concat), symbolic when any dim is: `a+b+n`, the integer last and left out when 0. */
export function dimSum(dims: readonly Dim[]): Dim {
  let n = 0;
  const syms: string[] = [];
  for (const d of dims) {
    if (typeof d === 'number') n += d;
    else syms.push(d);
  }
  if (syms.length === 0) return n;
  return [...syms, ...(n === 0 ? [] : [String(n)])].join('+');
}

// ---- arithmetic on dims (symbolic shape values) ----------------------------------------------------------------
// Integer shape computations (Shape → Gather → Add/Mul/Div → Concat) are evaluated on dims: an expression is
// normalized to a polynomial (integer coefficient per product of atoms) so that `seq*1` is `seq`, `past+seq-seq` is
// `past` and a difference of two spellings of the same sum cancels. An atom is a symbol or an opaque quotient that
// did not divide exactly. The canonical text lists the symbolic terms by their atoms, positive ones first, the
// constant after them (`past+seq+1`, `2*batch*heads`, `seq-past`, `1-seq`).

interface Term {
  readonly atoms: readonly string[];
  readonly c: number;
}
/** Sum of terms, keyed by their sorted atoms joined with '*' ('' is the constant term). */
type Poly = Map<string, Term>;

const polyConst = (n: number): Poly => (n === 0 ? new Map() : new Map([['', { atoms: [], c: n }]]));

function polyAddTerm(p: Poly, t: Term): void {
  const key = t.atoms.join('*');
  const c = (p.get(key)?.c ?? 0) + t.c;
  if (c === 0) p.delete(key);
  else p.set(key, { atoms: t.atoms, c });
}

function polyAdd(a: Poly, b: Poly, sign = 1): Poly {
  const p: Poly = new Map(a);
  for (const t of b.values()) polyAddTerm(p, { atoms: t.atoms, c: sign * t.c });
  return p;
}

function polyMul(a: Poly, b: Poly): Poly {
  const p: Poly = new Map();
  for (const x of a.values()) {
    for (const y of b.values()) polyAddTerm(p, { atoms: [...x.atoms, ...y.atoms].sort(), c: x.c * y.c });
  }
  return p;
}

/** t / d for single terms when exact (d's atoms are a sub-multiset of t's, coefficients divide). */
function termDiv(t: Term, d: Term): Term | undefined {
  if (d.c === 0 || t.c % d.c !== 0) return undefined;
  const rest = [...t.atoms];
  for (const a of d.atoms) {
    const j = rest.indexOf(a);
    if (j < 0) return undefined;
    rest.splice(j, 1);
  }
  return { atoms: rest, c: t.c / d.c };
}

const polyEq = (a: Poly, b: Poly): boolean => a.size === b.size && [...a].every(([k, t]) => b.get(k)?.c === t.c);

/** a / b when exact: b a single term dividing every term of a, or a sum with a single-term quotient; else undefined. */
function polyDiv(a: Poly, b: Poly): Poly | undefined {
  if (b.size === 0) return undefined;
  if (a.size === 0) return new Map();
  const d0 = b.values().next().value!;
  if (b.size === 1) {
    const p: Poly = new Map();
    for (const t of a.values()) {
      const q = termDiv(t, d0);
      if (!q) return undefined;
      polyAddTerm(p, q);
    }
    return p;
  }
  // Any exact single-term quotient q satisfies q = t / d0 for some term t of a.
  for (const t of a.values()) {
    const q = termDiv(t, d0);
    if (!q) continue;
    const qp: Poly = new Map([[q.atoms.join('*'), q]]);
    if (polyEq(polyMul(qp, b), a)) return qp;
  }
  return undefined;
}

const atomText = (s: string): string => (SYMBOL.test(s) ? s : `(${s})`);

function printPoly(p: Poly): Dim {
  const terms = [...p.values()];
  if (terms.every((t) => t.atoms.length === 0)) return terms[0]?.c ?? 0;
  const key = (t: Term) => t.atoms.join('*');
  terms.sort((x, y) => {
    if (x.c > 0 !== y.c > 0) return x.c > 0 ? -1 : 1; // positive terms first: no unary minus in the syntax
    if (x.atoms.length === 0 || y.atoms.length === 0) return y.atoms.length - x.atoms.length; // then the constant
    return key(x) < key(y) ? -1 : key(x) > key(y) ? 1 : 0;
  });
  let s = terms[0]!.c > 0 ? '' : '0';
  for (const t of terms) {
    const mag = Math.abs(t.c);
    const body =
      t.atoms.length === 0 ? String(mag) : [...(mag === 1 ? [] : [String(mag)]), ...t.atoms.map(atomText)].join('*');
    s += s === '' ? body : `${t.c > 0 ? '+' : '-'}${body}`;
  }
  return s;
}

function toPoly(e: DimExpr): Poly {
  switch (e.k) {
    case 'int':
      return polyConst(e.n);
    case 'sym':
      return new Map([[e.name, { atoms: [e.name], c: 1 }]]);
    case 'sum':
      return e.terms.reduce<Poly>((acc, t) => polyAdd(acc, toPoly(t.e), t.neg ? -1 : 1), new Map());
    case 'product': {
      let acc = polyConst(1);
      for (const f of e.factors) {
        const fp = toPoly(f.e);
        if (!f.inv) acc = polyMul(acc, fp);
        else acc = polyDiv(acc, fp) ?? opaqueQuotient(acc, fp);
      }
      return acc;
    }
  }
}

function opaqueQuotient(a: Poly, b: Poly): Poly {
  const num = String(printPoly(a));
  const den = String(printPoly(b));
  const text = `${SYMBOL.test(num) || /^\d+$/.test(num) ? num : `(${num})`}/${SYMBOL.test(den) || /^\d+$/.test(den) ? den : `(${den})`}`;
  return new Map([[text, { atoms: [text], c: 1 }]]);
}

function polyOf(d: Dim): Poly | undefined {
  try {
    return toPoly(parseDim(d));
  } catch {
    return undefined; // not expression syntax (an ONNX dim_param like 'a.b'): no arithmetic on it
  }
}

/** Canonical form of a dim (`seq*1` → `seq`, `past+seq-seq` → `past`); unparseable text is returned as is. */
export function simplifyDim(d: Dim): Dim {
  if (typeof d === 'number') return d;
  const p = polyOf(d);
  return p ? printPoly(p) : d;
}

function dimArith(a: Dim, b: Dim, f: (x: Poly, y: Poly) => Poly | undefined): Dim | undefined {
  const x = polyOf(a);
  const y = polyOf(b);
  if (!x || !y) return undefined;
  const r = f(x, y);
  return r && printPoly(r);
}

/** a + b, normalized; undefined when a dim is not expression text. */
export const dimAdd = (a: Dim, b: Dim): Dim | undefined =>
  typeof a === 'number' && typeof b === 'number' ? a + b : dimArith(a, b, (x, y) => polyAdd(x, y));
/** a - b, normalized. */
export const dimSub = (a: Dim, b: Dim): Dim | undefined =>
  typeof a === 'number' && typeof b === 'number' ? a - b : dimArith(a, b, (x, y) => polyAdd(x, y, -1));
/** a * b, normalized. */
export const dimMul = (a: Dim, b: Dim): Dim | undefined =>
  typeof a === 'number' && typeof b === 'number' ? a * b : dimArith(a, b, polyMul);
/**
 * Integer a / b (truncating, as ONNX Div on integers): numbers divide; symbolic dims only when the division is exact
 * (`(4*seq)/2` → `2*seq`, `batch*heads/heads` → `batch`), else undefined: `seq/2` has no exact symbolic value.
 */
export function dimDiv(a: Dim, b: Dim): Dim | undefined {
  if (typeof a === 'number' && typeof b === 'number') return b === 0 ? undefined : Math.trunc(a / b);
  return dimArith(a, b, polyDiv);
}
