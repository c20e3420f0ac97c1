/**
 * kiln/dsl parser and type checker: what a DSL function becomes (typed AST), the typing rules (literals adapt, no
 * implicit conversions, float-only `/`), the spellings of intrinsics a compiled function's `.toString()` may carry,
 * and located errors: each bad input names the construct at its exact 1-based line and column.
 */
import { describe, expect, it } from 'vitest';
import { DslError, parseDsl, type ParseOptions } from '../../src/dsl/index.js';

/** The DslError a source raises. */
function errorOf(src: string, opts: ParseOptions = {}): DslError {
  try {
    parseDsl(src, opts);
  } catch (e) {
    expect(e).toBeInstanceOf(DslError);
    return e as DslError;
  }
  throw new Error('parsed without error');
}

describe('DSL parsing and types', () => {
  it('an arrow with annotations: params, result, body', () => {
    const f = parseDsl('(x: f32, b: f32) => x * sigmoid(x) + b');
    expect(f.params).toEqual([
      { name: 'x', type: 'f32' },
      { name: 'b', type: 'f32' },
    ]);
    expect(f.result).toBe('f32');
    expect(f.body).toEqual([
      {
        k: 'return',
        value: {
          k: 'bin',
          t: 'f32',
          op: 'add',
          a: {
            k: 'bin',
            t: 'f32',
            op: 'mul',
            a: { k: 'param', t: 'f32', i: 0 },
            b: { k: 'call', t: 'f32', fn: 'sigmoid', args: [{ k: 'param', t: 'f32', i: 0 }] },
          },
          b: { k: 'param', t: 'f32', i: 1 },
        },
      },
    ]);
  });

  it('literals take their context type; a bare literal is f32; const literals stay literals', () => {
    const f = parseDsl('(n: i32): i32 => { const k = 3; let m: u32 = 7; return n * k + i32(m); }');
    expect(f.body[0]).toEqual({ k: 'decl', id: 0, t: 'u32', init: { k: 'lit', t: 'u32', v: 7 }, mutable: true });
    const ret = f.body[1]!;
    expect(ret.k === 'return' && ret.value.k === 'bin' && ret.value.a).toEqual({
      k: 'bin',
      t: 'i32',
      op: 'mul',
      a: { k: 'param', t: 'i32', i: 0 },
      b: { k: 'lit', t: 'i32', v: 3 },
    });
    expect(parseDsl('() => 2 * 3').body).toEqual([{ k: 'return', value: { k: 'lit', t: 'f32', v: 6 } }]);
    expect(parseDsl('(x: f32) => { let acc = 0; acc += x; return acc; }').locals).toEqual(['f32']);
  });

  it('f16 parameters compute in f32; the result type may be f16 or bool', () => {
    const f = parseDsl('(h: f16, x: f32): f16 => h + x');
    expect(f.params.map((p) => p.type)).toEqual(['f16', 'f32']);
    expect(f.result).toBe('f16');
    expect(parseDsl('(x: f32) => x > 0 && !(x > 1)').result).toBe('bool');
  });

  it('Math.*, a namespace import and the bundlers’ (0, ns.f) form name the same intrinsics', () => {
    const a = parseDsl('(x: f32) => Math.exp(x) + Math.max(x, 1, 2) + Math.PI');
    const b = parseDsl('(x: f32) => dsl.exp(x) + dsl.max(x, 1, 2) + 3.141592653589793');
    const c = parseDsl('(x) => (0, __vite_ssr_import_1__.exp)(x) + max(x, 1, 2) + Math.PI');
    expect(b.body).toEqual(a.body);
    expect(c.body).toEqual(a.body);
  });

  it('a function object (no annotations after compilation) takes its types from the options', () => {
    const f = parseDsl((x: number, n: number) => x * n, { inputs: ['f32', 'f32'], output: 'f32' });
    expect(f.params.map((p) => p.type)).toEqual(['f32', 'f32']);
    expect(f.result).toBe('f32');
    const g = parseDsl('function gate(x, y) { if (x > y) { return x; } return y * 0.5; }', { inputs: ['f32', 'f32'] });
    expect(g.body.map((s) => s.k)).toEqual(['if', 'return']);
  });

  it('outer values come in through the constants option (numbers adapt like literals)', () => {
    const f = parseDsl('(n: i32, x: f32) => select(ON, n * K, 0) + i32(x * K)', { constants: { K: 3, ON: true } });
    const ret = f.body[0]!;
    expect(ret.k === 'return' && ret.value.k === 'bin' && ret.value.a).toEqual({
      k: 'sel',
      t: 'i32',
      c: { k: 'lit', t: 'bool', v: 1 },
      a: { k: 'bin', t: 'i32', op: 'mul', a: { k: 'param', t: 'i32', i: 0 }, b: { k: 'lit', t: 'i32', v: 3 } },
      b: { k: 'lit', t: 'i32', v: 0 },
    });
    expect(errorOf('(x: f32) => x * ALPHA').detail).toMatch(
      /unknown name 'ALPHA' \(an outer value goes in the constants/,
    );
    expect(errorOf('(x: f32) => x', { constants: { exp: 1 } }).detail).toMatch(/constant 'exp' is not a usable name/);
  });

  it('a method (its .toString() is `name(…) { … }`) parses, and its errors keep their columns', () => {
    const obj = {
      gate(x: number, y: number) {
        return x * y;
      },
    };
    expect(parseDsl(obj.gate, { inputs: ['f32', 'f32'] }).params.map((p) => p.name)).toEqual(['x', 'y']);
    const e = errorOf('scale(x: f32) { return x + y; }');
    expect([e.line, e.column]).toEqual([1, 28]);
  });

  it('loops: constant bounds (literals or const names), <=, +=; the loop variable is i32', () => {
    const f = parseDsl(
      '(x: f32) => { const N = 4; let s = 0; for (let i = 1; i <= N; i += 2) { s += x * f32(i); } return s; }',
    );
    const loop = f.body[1]!;
    expect(loop.k === 'for' && [loop.start, loop.end, loop.step]).toEqual([1, 5, 2]);
    expect(f.locals).toEqual(['f32', 'i32']);
  });
});

describe('DSL errors are located (1-based line, column) and name the construct', () => {
  const cases: [string, string, number, number, RegExp][] = [
    [
      'type mismatch',
      '(x: f32, n: i32) => {\n  const y = x * n;\n  return y;\n}',
      2,
      15,
      /operands of '\*': type mismatch, f32 and i32/,
    ],
    ['unknown function', '(x: f32) =>\n  x + frobnicate(x)', 2, 7, /unknown function 'frobnicate'/],
    ['unknown name', '(x: f32) => x + y', 1, 17, /unknown name 'y'/],
    [
      'while loop',
      '(x: f32) => {\n  let s = x;\n  while (s > 1) { s = s / 2; }\n  return s;\n}',
      3,
      3,
      /unsupported statement: while loop/,
    ],
    ['integer division', '(a: i32, b: i32) => a / b', 1, 23, /integer '\/'.*idiv/],
    [
      'non-constant loop bound',
      '(x: f32, n: i32) => {\n  let s = 0;\n  for (let i = 0; i < n; i++) { s += x; }\n  return s;\n}',
      3,
      23,
      /loop bound must be a constant integer/,
    ],
    [
      'assignment to a parameter',
      '(x: f32) => {\n    x = 2;\n    return x;\n}',
      2,
      5,
      /cannot assign to parameter 'x'/,
    ],
    ['assignment to a const', '(x: f32) => { const y = x; y += 1; return y; }', 1, 28, /cannot assign to const 'y'/],
    ['missing return', '(x: f32) => {\n  if (x > 0) { return x; }\n}', 3, 1, /can end without returning/],
    ['unreachable code', '(x: f32) => {\n  return x;\n  const y = 1;\n}', 3, 3, /unreachable statement after return/],
    ['string literal', "(x: f32) => x + 'a'", 1, 17, /unsupported syntax: string literal/],
    ['syntax error', '(x: f32) => x +* 2', 1, 16, /syntax error/],
    ['bool arithmetic', '(x: f32) => (x > 0) + 1', 1, 21, /operands of '\+'.*bool/],
    ['&& on numbers', '(x: f32) => x && x', 1, 15, /operands of '&&'.*bool/],
    ['non-integer literal as i32', '(n: i32) => n + 0.5', 1, 15, /0\.5 is not an integer/],
    ['unknown type', '(x: f64) => x', 1, 5, /unknown type 'f64'/],
    ['wrong arity', '(x: f32) => clamp(x, 0)', 1, 13, /clamp\(\) takes 3 argument/],
    [
      'returns of two types',
      '(x: f32, n: i32) => {\n  if (x > 0) { return x; }\n  return n;\n}',
      3,
      10,
      /returned value.*i32 where f32/,
    ],
    ['not a function', 'x * 2', 1, 1, /expected a function/],
    [
      'loop too long',
      '(x: f32) => {\n  let s = x;\n  for (let i = 0; i < 100000; i++) { s += 1; }\n  return s;\n}',
      3,
      3,
      /100000 iterations.*limit of 4096/,
    ],
    ['array indexing', '(x: f32) => {\n  const a = x;\n  return a[0];\n}', 3, 10, /unsupported syntax: indexing/],
    [
      'a local redeclaring a parameter',
      '(x: f32) => {\n  const x = 2;\n  return x;\n}',
      2,
      9,
      /'x' is already declared/,
    ],
    [
      'assignment in an expression',
      '(x: f32) => {\n  let y = x;\n  return (y = 2);\n}',
      3,
      11,
      /assignment inside an expression/,
    ],
  ];
  for (const [what, src, line, column, msg] of cases) {
    it(`${what} at ${line}:${column}`, () => {
      const e = errorOf(src);
      expect([e.line, e.column]).toEqual([line, column]);
      expect(e.detail).toMatch(msg);
      expect(e.message.startsWith(`<dsl>:${line}:${column}: `)).toBe(true);
    });
  }

  it('file, line and column options place the source in the user file', () => {
    // the source starts at line 10, column 21 of app.ts: its first line shifts by the column, later lines do not
    const first = errorOf('(x: f32) => x + y', { file: 'app.ts', line: 10, column: 21 });
    expect([first.file, first.line, first.column]).toEqual(['app.ts', 10, 37]);
    expect(first.message).toMatch(/^app\.ts:10:37: unknown name 'y'/);
    const later = errorOf('(x: f32) =>\n  x + y', { file: 'app.ts', line: 10, column: 21 });
    expect([later.line, later.column]).toEqual([11, 7]);
  });

  it('errors carry the op name and a kiln error code', () => {
    const e = errorOf('(x: f32, n: i32) => x * n', { op: 'my_op' });
    expect(e.code).toBe('dtype');
    expect(e.location.op).toBe('my_op');
    expect(errorOf('(x: f32) => { while (true) {} }').code).toBe('unsupported');
    expect(errorOf('(x: f32) => x +* 2').code).toBe('parse');
  });

  it('annotated types must agree with the options', () => {
    const e = errorOf('(x: f32, n: i32) => x', { inputs: ['f32', 'f32'] });
    expect([e.line, e.column]).toEqual([1, 13]);
    expect(e.detail).toMatch(/parameter 'n' is i32, inputs says f32/);
  });
});
