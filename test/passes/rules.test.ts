/** Every canonicalization rule: a before / after pair in IR text and a near miss where it must not fire. */
import { describe, expect, it } from 'vitest';
import {
  arithmeticRules,
  castRules,
  exactIn,
  foldRules,
  gemmRules,
  matmulBiasRules,
  viewRules,
} from '../../passes/index.js';
import { expectSameGraph, expectUnchanged, rewrite } from './helpers.js';

describe('constant folding', () => {
  it('folds a node whose inputs are constants, through the reference', () => {
    const g = rewrite(
      `graph g {
        input %x: f32[2]
        const %a: f32[2] = [1, 2]
        const %b: f32[2] = [3, 5]
        %s: f32[2] = add(%a, %b)
        %y: f32[2] = mul(%x, %s)
        output %y
      }`,
      foldRules,
    );
    expectSameGraph(
      g,
      `graph g {
        input %x: f32[2]
        const %s: f32[2] = [4, 7]
        %y: f32[2] = mul(%x, %s)
        output %y
      }`,
    );
  });

  it('folds shape of a statically shaped tensor, and the shape chain after it', () => {
    const g = rewrite(
      `graph g {
        input %x: f32[2,3]
        input %w: f32[6]
        const %i: i64[1] = [1]
        %s: i64[2] = shape(%x)
        %d: i64[1] = gather(%s, %i) {axis=0}
        %e: i64[1] = neg(%d)
        %y: f32[2,3] = reshape(%w, %s)
        %z: f32[2,3] = add(%x, %y)
        output %z
      }`,
      foldRules,
    );
    // shape folds to a constant; the gather and neg of it too, then nobody reads them
    expectSameGraph(
      g,
      `graph g {
        input %x: f32[2,3]
        input %w: f32[6]
        const %s: i64[2] = [2, 3]
        %y: f32[2,3] = reshape(%w, %s)
        %z: f32[2,3] = add(%x, %y)
        output %z
      }`,
    );
  });

  it('near miss: a non-constant input, a result past the size limit, a graph output', () => {
    expectUnchanged(
      `graph g {
        input %x: f32[2]
        const %a: f32[2] = [1, 2]
        %s: f32[2] = add(%a, %x)
        output %s
      }`,
      foldRules,
    );
    expectUnchanged(
      `graph g {
        input %x: f32[70000]
        const %lo: f32[] = [0]
        const %hi: f32[] = [70000]
        const %st: f32[] = [1]
        %r: f32[70000] = range(%lo, %hi, %st)
        %y: f32[70000] = add(%x, %r)
        output %y
      }`,
      foldRules,
    );
    expectUnchanged(
      `graph g {
        const %a: f32[2] = [1, 2]
        %y: f32[2] = neg(%a)
        output %y
      }`,
      foldRules,
    );
  });
});

describe('arithmetic identities', () => {
  const unary = (body: string, xType = 'f32[2,3]', zType = xType) => `graph g {
    input %x: ${xType}
    ${body}
    %z: ${zType} = neg(%y)
    output %z
  }`;
  const justNeg = `graph g {
    input %x: f32[2,3]
    %z: f32[2,3] = neg(%x)
    output %z
  }`;

  for (const [name, body] of [
    ['x·1', 'const %c: f32[1] = [1]\n %y: f32[2,3] = mul(%x, %c)'],
    ['1·x (commuted)', 'const %c: f32[3] = [1, 1, 1]\n %y: f32[2,3] = mul(%c, %x)'],
    ['x+0', 'const %c: f32[] = [0]\n %y: f32[2,3] = add(%x, %c)'],
    ['0+x (commuted)', 'const %c: f32[] = [-0]\n %y: f32[2,3] = add(%c, %x)'],
    ['x−0', 'const %c: f32[] = [0]\n %y: f32[2,3] = sub(%x, %c)'],
    ['x/1', 'const %c: f32[] = [1]\n %y: f32[2,3] = div(%x, %c)'],
    ['identity', '%y: f32[2,3] = identity(%x)'],
  ] as const) {
    it(`drops ${name}`, () => expectSameGraph(rewrite(unary(body), arithmeticRules), justNeg));
  }

  for (const [name, body, zType] of [
    ['x·1.0001', 'const %c: f32[] = [1.0001]\n %y: f32[2,3] = mul(%x, %c)', undefined],
    ['x·[1, 2, 1]', 'const %c: f32[3] = [1, 2, 1]\n %y: f32[2,3] = mul(%x, %c)', undefined],
    [
      'a broadcast x·ones that grows x',
      'const %c: f32[4,1,1] = [1, 1, 1, 1]\n %y: f32[4,2,3] = mul(%x, %c)',
      'f32[4,2,3]',
    ],
    ['0 − x', 'const %c: f32[] = [0]\n %y: f32[2,3] = sub(%c, %x)', undefined],
    ['1 / x', 'const %c: f32[] = [1]\n %y: f32[2,3] = div(%c, %x)', undefined],
    ['x + 1e-30', 'const %c: f32[] = [1e-30]\n %y: f32[2,3] = add(%x, %c)', undefined],
  ] as const) {
    it(`near miss: keeps ${name}`, () => expectUnchanged(unary(body, 'f32[2,3]', zType), arithmeticRules));
  }

  it('where on a constant condition picks a branch', () => {
    const w = (cond: string) => `graph g {
      input %a: f32[2]
      input %b: f32[2]
      const %c: bool[2] = [${cond}]
      %y: f32[2] = where(%c, %a, %b)
      %z: f32[2] = neg(%y)
      output %z
    }`;
    const pick = (v: string) => `graph g {
      input %a: f32[2]
      input %b: f32[2]
      %z: f32[2] = neg(%${v})
      output %z
    }`;
    expectSameGraph(rewrite(w('1, 1'), arithmeticRules), pick('a'));
    expectSameGraph(rewrite(w('0, 0'), arithmeticRules), pick('b'));
    expectUnchanged(w('1, 0'), arithmeticRules); // near miss: a mixed condition
  });
});

describe('views and transposes', () => {
  it('reshape∘reshape → one reshape', () => {
    expectSameGraph(
      rewrite(
        `graph g {
          input %x: f32[2,3,4]
          const %s1: i64[2] = [6, 4]
          const %s2: i64[3] = [3, 2, 4]
          %a: f32[6,4] = reshape(%x, %s1)
          %b: f32[3,2,4] = reshape(%a, %s2)
          %z: f32[3,2,4] = neg(%b)
          output %z
        }`,
        viewRules,
      ),
      `graph g {
        input %x: f32[2,3,4]
        const %s: i64[3] = [3, 2, 4]
        %b: f32[3,2,4] = reshape(%x, %s)
        %z: f32[3,2,4] = neg(%b)
        output %z
      }`,
    );
  });

  const neg = (t: string) => `graph g {
    input %x: ${t}
    %z: ${t} = neg(%x)
    output %z
  }`;

  it('squeeze∘unsqueeze on the same axes, unsqueeze∘squeeze, and reshapes back → x', () => {
    for (const body of [
      '%a: f32[2,1,3] = unsqueeze(%x) {axes=[1]}\n %b: f32[2,3] = squeeze(%a) {axes=[-2]}',
      '%a: f32[1,2,3] = unsqueeze(%x) {axes=[0]}\n %b: f32[1,2,3] = neg(%a)\n %c: f32[2,3] = squeeze(%b) {axes=[0]}\n %d: f32[1,2,3] = unsqueeze(%c) {axes=[0]}\n %e: f32[2,3] = squeeze(%d) {axes=[0]}',
    ]) {
      const g = rewrite(
        `graph g {
          input %x: f32[2,3]
          ${body}
          %z: f32[2,3] = neg(%${body.includes('%e') ? 'e' : 'b'})
          output %z
        }`,
        viewRules,
      );
      if (!body.includes('%e')) expectSameGraph(g, neg('f32[2,3]'));
      else
        expectSameGraph(
          g,
          `graph g {
            input %x: f32[2,3]
            %a: f32[1,2,3] = unsqueeze(%x) {axes=[0]}
            %b: f32[1,2,3] = neg(%a)
            %c: f32[2,3] = squeeze(%b) {axes=[0]}
            %z: f32[2,3] = neg(%c)
            output %z
          }`,
        );
    }
  });

  it('a reshape to the same shape is dropped, also with symbolic dims', () => {
    expectSameGraph(
      rewrite(
        `graph g {
          input %x: f32[batch,4]
          input %s: i64[2]
          %y: f32[batch,4] = flatten(%x) {axis=1}
          %z: f32[batch,4] = neg(%y)
          output %z
        }`,
        viewRules,
      ),
      `graph g {
        input %x: f32[batch,4]
        input %s: i64[2]
        %z: f32[batch,4] = neg(%x)
        output %z
      }`,
    );
  });

  it('near miss: views that change the shape stay', () => {
    expectUnchanged(
      `graph g {
        input %x: f32[2,3]
        const %s: i64[1] = [6]
        %a: f32[6] = reshape(%x, %s)
        %b: f32[6] = neg(%a)
        %c: f32[1,6] = unsqueeze(%b) {axes=[0]}
        %z: f32[1,6] = neg(%c)
        output %z
      }`,
      viewRules,
    );
  });

  it('transpose∘transpose → one transpose, or none when the perms cancel', () => {
    const t = (p1: string, mid: string, p2: string, out: string) => `graph g {
      input %x: f32[2,3,4]
      %a: f32[${mid}] = transpose(%x) {perm=[${p1}]}
      %b: f32[${out}] = transpose(%a) {perm=[${p2}]}
      %z: f32[${out}] = neg(%b)
      output %z
    }`;
    expectSameGraph(rewrite(t('1, 2, 0', '3,4,2', '2, 0, 1', '2,3,4'), viewRules), neg('f32[2,3,4]'));
    expectSameGraph(
      rewrite(t('1, 0, 2', '3,2,4', '0, 2, 1', '3,4,2'), viewRules),
      `graph g {
        input %x: f32[2,3,4]
        %b: f32[3,4,2] = transpose(%x) {perm=[1, 2, 0]}
        %z: f32[3,4,2] = neg(%b)
        output %z
      }`,
    );
    // no perm reverses: reverse∘reverse = identity
    expectSameGraph(
      rewrite(
        `graph g {
          input %x: f32[2,3,4]
          %a: f32[4,3,2] = transpose(%x)
          %b: f32[2,3,4] = transpose(%a)
          %z: f32[2,3,4] = neg(%b)
          output %z
        }`,
        viewRules,
      ),
      neg('f32[2,3,4]'),
    );
    expectSameGraph(
      rewrite(
        `graph g {
          input %x: f32[2,3,4]
          %a: f32[2,3,4] = transpose(%x) {perm=[0, 1, 2]}
          %z: f32[2,3,4] = neg(%a)
          output %z
        }`,
        viewRules,
      ),
      neg('f32[2,3,4]'),
    );
  });

  it('near miss: a lone transpose, and a pair separated by another op', () => {
    expectUnchanged(
      `graph g {
        input %x: f32[2,3,4]
        %a: f32[3,2,4] = transpose(%x) {perm=[1, 0, 2]}
        %b: f32[3,2,4] = neg(%a)
        %c: f32[2,3,4] = transpose(%b) {perm=[1, 0, 2]}
        output %c
      }`,
      viewRules,
    );
  });
});

describe('casts', () => {
  const chain = (x: string, b: string, c: string) => `graph g {
    input %x: ${x}[3]
    %a: ${b}[3] = cast(%x) {to="${b}"}
    %y: ${c}[3] = cast(%a) {to="${c}"}
    %z: ${c}[3] = neg(%y)
    output %z
  }`;

  it('drops an exact round trip (f16 → f32 → f16) and a cast to the same dtype', () => {
    const back = `graph g {
      input %x: f16[3]
      %z: f16[3] = neg(%x)
      output %z
    }`;
    expectSameGraph(rewrite(chain('f16', 'f32', 'f16'), castRules), back);
    expectSameGraph(
      rewrite(
        `graph g {
          input %x: f16[3]
          %y: f16[3] = cast(%x) {to="f16"}
          %z: f16[3] = neg(%y)
          output %z
        }`,
        castRules,
      ),
      back,
    );
  });

  it('shortens a chain whose first cast widens exactly (i32 → i64 → f32 = i32 → f32)', () => {
    expectSameGraph(
      rewrite(chain('i32', 'i64', 'f32'), castRules),
      `graph g {
        input %x: i32[3]
        %y: f32[3] = cast(%x) {to="f32"}
        %z: f32[3] = neg(%y)
        output %z
      }`,
    );
  });

  it('near miss: chains whose first cast rounds or truncates stay', () => {
    expectUnchanged(chain('f32', 'f16', 'f32'), castRules);
    expectUnchanged(chain('f32', 'i32', 'f32'), castRules);
    expectUnchanged(chain('i32', 'f32', 'i32'), castRules);
    expectUnchanged(chain('f16', 'bf16', 'f16'), castRules);
  });

  it('exactIn knows the lattice', () => {
    expect(exactIn('f16', 'f32')).toBe(true);
    expect(exactIn('bf16', 'f32')).toBe(true);
    expect(exactIn('f32', 'f16')).toBe(false);
    expect(exactIn('f16', 'bf16')).toBe(false);
    expect(exactIn('u8', 'f16')).toBe(true);
    expect(exactIn('i32', 'f32')).toBe(false);
    expect(exactIn('i32', 'f64')).toBe(true);
    expect(exactIn('u32', 'i32')).toBe(false);
    expect(exactIn('bool', 'u4')).toBe(true);
  });
});

describe('matmul forms', () => {
  it('folds 2-D transposes into gemm flags', () => {
    expectSameGraph(
      rewrite(
        `graph g {
          input %a: f32[3,2]
          input %b: f32[4,3]
          %at: f32[2,3] = transpose(%a) {perm=[1, 0]}
          %bt: f32[3,4] = transpose(%b)
          %y: f32[2,4] = gemm(%at, %bt) {transB=false}
          output %y
        }`,
        gemmRules,
      ),
      `graph g {
        input %a: f32[3,2]
        input %b: f32[4,3]
        %y: f32[2,4] = gemm(%a, %b) {transA=true, transB=true}
        output %y
      }`,
    );
  });

  it('near miss: gemm on plain operands stays', () => {
    expectUnchanged(
      `graph g {
        input %a: f32[2,3]
        input %b: f32[3,4]
        %y: f32[2,4] = gemm(%a, %b) {transA=false}
        output %y
      }`,
      gemmRules,
    );
  });

  it('matmul + bias → gemm', () => {
    expectSameGraph(
      rewrite(
        `graph g {
          input %a: f32[2,3]
          input %b: f32[3,4]
          const %c: f32[4] = [1, 2, 3, 4]
          %m: f32[2,4] = matmul(%a, %b)
          %y: f32[2,4] = add(%c, %m)
          output %y
        }`,
        matmulBiasRules,
      ),
      `graph g {
        input %a: f32[2,3]
        input %b: f32[3,4]
        const %c: f32[4] = [1, 2, 3, 4]
        %y: f32[2,4] = gemm(%a, %b, %c)
        output %y
      }`,
    );
  });

  it('near miss: a matmul used twice, a batched matmul, a bias that grows the result', () => {
    expectUnchanged(
      `graph g {
        input %a: f32[2,3]
        input %b: f32[3,4]
        const %c: f32[4] = [1, 2, 3, 4]
        %m: f32[2,4] = matmul(%a, %b)
        %y: f32[2,4] = add(%m, %c)
        %z: f32[2,4] = mul(%m, %y)
        output %z
      }`,
      matmulBiasRules,
    );
    expectUnchanged(
      `graph g {
        input %a: f32[5,2,3]
        input %b: f32[3,4]
        const %c: f32[4] = [1, 2, 3, 4]
        %m: f32[5,2,4] = matmul(%a, %b)
        %y: f32[5,2,4] = add(%m, %c)
        output %y
      }`,
      matmulBiasRules,
    );
    expectUnchanged(
      `graph g {
        input %a: f32[2,3]
        input %b: f32[3,4]
        input %c: f32[3,1,4]
        %m: f32[2,4] = matmul(%a, %b)
        %y: f32[3,2,4] = add(%m, %c)
        output %y
      }`,
      matmulBiasRules,
    );
  });
});
