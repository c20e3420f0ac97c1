import { add, assign, c, div, for_, mod, mul, sub, v, var_, type Expr } from '../../kir.js';
import type { LowerCtx, LoweredStep } from '../kernel-builder.js';
import { pointwise } from '../pointwise.js';
import { outputReads, type Axes, type Contraction, type View } from './contraction.js';
import { Gen } from './gen.js';

/**
 * Packed outputs (i8/u8/i16/u16 results): the pointwise template (one thread per packed word), each element a loop
 * over k. An axis's coordinate is (flat / its output stride) mod its size — every batch/m/n axis is a contiguous
 * run of output dims (merged axes included).
 */
export function pointwiseContraction(ctx: LowerCtx, con: Contraction): LoweredStep {
  const inputs = [con.a, con.b, con.aZero, con.bZero, con.bias, ...(con.extras ?? [])]
    .filter((w): w is View => !!w)
    .map((w) => w.input);
  const reads = [...new Set(inputs)];
  return pointwise(ctx, {
    label: `${con.label}_loop`,
    reads,
    value: (p) => {
      const kb = p.kb;
      const g = new Gen(kb, ctx, con, (i, index) => p.loadAt(i, index));
      const coords: Record<'batch' | 'm' | 'n', Expr[]> = { batch: [], m: [], n: [] };
      for (const cat of ['batch', 'm', 'n'] as const) {
        con.dims[cat].forEach((_, i) => {
          const q = div(p.flat, g.stride(con.out, 'o', cat, i));
          coords[cat].push(kb.let('x', mod(q, g.size(cat, i))));
        });
      }
      const row = (w: Axes, name: string) =>
        kb.let(
          'ro',
          add(
            add(g.offset(w, name, 'batch', coords.batch), g.offset(w, name, 'm', coords.m)),
            g.offset(w, name, 'n', coords.n),
          ),
        );
      const acc = kb.fresh('acc');
      kb.emit(var_(acc, g.ct, g.zero()));
      const terms = (
        [
          [con.a, con.aZero, 'a'],
          [con.b, con.bZero, 'b'],
        ] as const
      ).map(([w, z, name]) => ({ w, z, name, rw: row(w.st, name), rz: z ? row(z.st, `${name}z`) : undefined }));
      const kv = kb.fresh('k');
      const [body] = kb.collect(() => {
        const kc = g.coords('k', v(kv, 'i32'));
        const [x, y] = terms.map(({ w, z, name, rw, rz }) => {
          let e = g.ld(w, add(rw, g.offset(w.st, name, 'k', kc)));
          if (z && rz) e = sub(e, g.ld(z, add(rz, g.offset(z.st, `${name}z`, 'k', kc))));
          return e;
        });
        kb.emit(assign(acc, add(v(acc, g.ct), mul(x!, y!))));
      });
      kb.emit(for_(kv, c.i32(0), g.total('k'), body));
      // the flat m / n index of the element (row-major over each space's axes)
      const flat = (cat: 'm' | 'n') =>
        coords[cat].reduce<Expr>((f, x, i) => (i === 0 ? x : add(mul(f, g.size(cat, i)), x)), c.i32(0));
      return g.epilogue(
        v(acc, g.ct),
        outputReads(con).map(({ w, name }) => row(w.st, name)),
        { m: flat('m'), n: flat('n') },
      );
    },
  });
}
