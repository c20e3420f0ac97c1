/** Symbolic dim expressions: parse, print, evaluate, factor — hand-worked cases. */
import { describe, expect, it } from 'vitest';
import { dimFactors, dimProduct, dimSum, evalDim, parseDim, printDimExpr } from '../../ir/dim-expr.js';

describe('dim expressions', () => {
  it('builds products and sums in the IR text format', () => {
    expect(dimProduct([2, 'seq', 3])).toBe('6*seq');
    expect(dimProduct(['a', 'b+c'])).toBe('a*(b+c)');
    expect(dimProduct([1, 'a'])).toBe('a');
    expect(dimProduct([0, 'a'])).toBe(0);
    expect(dimProduct([2, 3])).toBe(6);
    expect(dimSum(['past', 'seq'])).toBe('past+seq');
    expect(dimSum([2, 'seq', 1])).toBe('seq+3');
    expect(dimSum([2, 3])).toBe(5);
  });

  it('evaluates under bindings with the usual precedence', () => {
    const env = { past: 5, seq: 3, a: 2, b: 7 };
    expect(evalDim('past+seq', env)).toBe(8);
    expect(evalDim('2*seq', env)).toBe(6);
    expect(evalDim('a*(b+seq)-1', env)).toBe(19);
    expect(evalDim('b-a-1', env)).toBe(4); // left-associative
    expect(evalDim('12/a/3', env)).toBe(2);
    expect(evalDim(4, env)).toBe(4);
    expect(evalDim('seq', new Map([['seq', 9]]))).toBe(9);
    expect(() => evalDim('seq+x', env)).toThrow(/unbound symbol x/);
    expect(() => parseDim('a+')).toThrow(/not a dim expression/);
  });

  it('prints with only the parentheses precedence needs', () => {
    expect(printDimExpr(parseDim('((a))+(b*c)'))).toBe('a+b*c');
    expect(printDimExpr(parseDim('a-(b+c)'))).toBe('a-(b+c)');
    expect(printDimExpr(parseDim('(a+b)*c/(d*e)'))).toBe('(a+b)*c/(d*e)');
  });

  it('factors products, keeping sums and quotients whole', () => {
    expect(dimFactors(['64*batch*seq', 2])).toEqual({ n: 128, syms: ['batch', 'seq'] });
    expect(dimFactors(['(a+b)*c'])).toEqual({ n: 1, syms: ['a+b', 'c'] });
    expect(dimFactors(['a/b'])).toEqual({ n: 1, syms: ['a/b'] });
    expect(dimFactors(['x.y'])).toEqual({ n: 1, syms: ['x.y'] }); // an ONNX dim_param outside the syntax
  });
});
