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
