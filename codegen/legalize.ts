/**
 * Legalization of kernel IR before rendering: packed sub-32-bit loads and whole-word packed stores become plain
 * u32 word accesses with shifts and masks, so renderers only ever index arrays of 32-bit (or f16) elements.
 */
import {
  PACK,
  bin,
  bitcast,
  c,
  cast,
  load,
  store,
  type BufferParam,
  type Expr,
  type Kernel,
  type Stmt,
  type Storage,
} from './kir.js';

const BITS: Partial<Record<Storage, number>> = { u8x4: 8, i8x4: 8, u16x2: 16, i16x2: 16, u4x8: 4, i4x8: 4 };
const SIGNED = new Set<Storage>(['i8x4', 'i16x2', 'i4x8']);

/**
 * The kernel with packed buffers (u8x4, i4x8 …) declared as u32 words: element loads become a word load, shift, mask
 * (and sign extension), whole-word `store_packed` a plain u32 store. Renderers require legalized kernels.
 *
 * @throws Error when a kernel stores a single element into a packed buffer (a lowering bug: use `store_packed`).
 */
export function legalize(k: Kernel): Kernel {
  const bufs = new Map<string, BufferParam>(k.buffers.map((b) => [b.name, b]));
  const packed = (name: string) => {
    const b = bufs.get(name);
    return b && PACK[b.storage] > 1 ? b : undefined;
  };

  const expr = (e: Expr): Expr => {
    switch (e.k) {
      case 'load': {
        const index = expr(e.index);
        const b = packed(e.buf);
        if (!b) return index === e.index ? e : { ...e, index };
        const bits = BITS[b.storage]!;
        const per = PACK[b.storage];
        const idx = cast('i32', index);
        const word = load(e.buf, bin('div', idx, c.i32(per)), 'u32');
        const shift = cast('u32', bin('mul', bin('mod', idx, c.i32(per)), c.i32(bits)));
        let val: Expr;
        if (SIGNED.has(b.storage)) {
          // move the field to the top, then arithmetic-shift it down: sign extension without branches
          const up = bin('shl', word, bin('sub', c.u32(32 - bits), shift));
          val = bin('shr', bitcast('i32', up), c.u32(32 - bits));
        } else {
          val = bin('bitand', bin('shr', word, shift), c.u32(2 ** bits - 1));
        }
        return cast(e.type, val);
      }
      case 'shared_load':
        return { ...e, index: expr(e.index) };
      case 'bin':
        return { ...e, a: expr(e.a), b: expr(e.b) };
      case 'un':
      case 'cast':
      case 'bitcast':
      case 'shuffle_xor':
        return { ...e, a: expr(e.a) };
      case 'select':
        return { ...e, cond: expr(e.cond), a: expr(e.a), b: expr(e.b) };
      case 'dot4':
        return { ...e, a: expr(e.a), b: expr(e.b) };
      default:
        return e;
    }
  };

  const stmt = (s: Stmt): Stmt => {
    switch (s.k) {
      case 'let':
        return { ...s, value: expr(s.value) };
      case 'var':
        return { ...s, init: expr(s.init) };
      case 'assign':
        return { ...s, value: expr(s.value) };
      case 'store': {
        if (packed(s.buf)) throw new Error(`single-element store into packed buffer ${s.buf}: use store_packed`);
        return { ...s, index: expr(s.index), value: expr(s.value) };
      }
      case 'store_packed': {
        const b = bufs.get(s.buf)!;
        const bits = BITS[b.storage];
        if (!bits) return store(s.buf, expr(s.word), expr(s.values[0]!));
        let word: Expr = c.u32(0);
        s.values.forEach((v, j) => {
          const field = bin('bitand', bitcast('u32', cast('i32', expr(v))), c.u32(2 ** bits - 1));
          word = bin('bitor', word, j === 0 ? field : bin('shl', field, c.u32(j * bits)));
        });
        return store(s.buf, expr(s.word), word);
      }
      case 'shared_store':
        return { ...s, index: expr(s.index), value: expr(s.value) };
      case 'for':
        return { ...s, start: expr(s.start), end: expr(s.end), step: expr(s.step), body: s.body.map(stmt) };
      case 'if':
        return s.else
          ? { ...s, cond: expr(s.cond), then: s.then.map(stmt), else: s.else.map(stmt) }
          : { ...s, cond: expr(s.cond), then: s.then.map(stmt) };
      default:
        return s;
    }
  };
  return { ...k, body: k.body.map(stmt) };
}
