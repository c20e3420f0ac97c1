/**
 * The IR text format: print and parse, exact round trip (numbers in shortest round-trip form, nan/inf spelled out).
 *
 *   graph name {
 *     input %x: f32[batch,seq,64]
 *     const %w: f32[2,2] = [1, 2, 3, 4]
 *     %y: f32[batch,seq,64] = gelu(%x) {approximate="tanh"} @gelu_0
 *     %a: f32[2], %b: f32[2] = split(%v, _) {axis=0, split=[2,2]} @split_1
 *     output %y
 *   }
 *
 * Names that are not identifiers are quoted (`%"a/b:0"`); `_` is an absent optional input; `@name` names the node.
 */
import { isDType, type DType } from './dtype.js';
import { ParseError } from './errors.js';
import { Graph, Node, Value } from './graph.js';
import { getOp, type AttrValue, type Attrs } from './registry.js';
import { dimToString, type Dim } from './shape.js';
import { makeTensor, naturalArray, type Tensor } from './tensor.js';
import { tensorType, typeToString, type Layout, type TensorType } from './types.js';

const IDENT = /^[A-Za-z_][A-Za-z0-9_.]*$/;
const nameText = (s: string) => (IDENT.test(s) ? s : JSON.stringify(s));

/** A number as IR text writes it: shortest round-trip decimal, `nan`, `inf`, `-inf`, `-0`. */
export function numToText(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (x === Infinity) return 'inf';
  if (x === -Infinity) return '-inf';
  if (Object.is(x, -0)) return '-0';
  return String(x);
}

function tensorText(t: Tensor): string {
  return `tensor<${t.dtype}[${t.shape.join(',')}]>[${Array.from(t.data, numToText).join(', ')}]`;
}

function attrText(v: AttrValue): string {
  if (typeof v === 'number') return numToText(v);
  if (typeof v === 'boolean') return String(v);
  if (typeof v === 'string') return JSON.stringify(v);
  if (Array.isArray(v))
    return `[${v.map((x: number | string) => (typeof x === 'number' ? numToText(x) : JSON.stringify(x))).join(', ')}]`;
  return tensorText(v as Tensor);
}

export interface PrintOptions {
  /** Replace value and node names by position (structural hashing: names do not matter). */
  canonical?: boolean;
  /**
   * Constants' data go to a byte blob instead of the text: each is written `= data(offset, bytes)`, its natural
   * typed array's bytes (little-endian) at `offset`, 16-byte aligned. `parseGraph(text, { data })` reads them back.
   */
  externalData?: {
    /** Stores `bytes` and returns their offset in the blob. */
    append(bytes: Uint8Array): number;
  };
}

/** Collects constants' bytes for {@link PrintOptions.externalData}; `bytes()` is the blob. */
export class DataBlob {
  private readonly parts: Uint8Array[] = [];
  private size = 0;
  /** Appends `bytes` at the next 16-byte-aligned offset (zero padding) and returns that offset. */
  append(bytes: Uint8Array): number {
    const pad = (16 - (this.size % 16)) % 16;
    if (pad) this.parts.push(new Uint8Array(pad));
    const offset = this.size + pad;
    this.parts.push(bytes);
    this.size = offset + bytes.byteLength;
    return offset;
  }
  /** The whole blob so far, as one new array. */
  bytes(): Uint8Array {
    const out = new Uint8Array(this.size);
    let at = 0;
    for (const p of this.parts) {
      out.set(p, at);
      at += p.byteLength;
    }
    return out;
  }
}

export interface ParseOptions {
  /** The blob constants written `= data(offset, bytes)` read from (see {@link PrintOptions.externalData}). */
  data?: Uint8Array;
}

/**
 * The graph as IR text (exact: `parseGraph` gives back an equal graph, float constants bit-exact). `opts.canonical`
 * names values by position (for hashing); `opts.externalData` moves constants' bytes out of the text.
 */
export function printGraph(g: Graph, opts: PrintOptions = {}): string {
  const ids = new Map<Value, string>();
  const ref = (v: Value) => {
    let r = ids.get(v);
    if (r === undefined) {
      r = `%${opts.canonical ? String(ids.size) : nameText(v.name)}`;
      ids.set(v, r);
    }
    return r;
  };
  const lines = [`graph ${opts.canonical ? '_' : nameText(g.name)} {`];
  for (const v of g.inputs) lines.push(`  input ${ref(v)}: ${typeToString(v.type)}`);
  for (const c of g.constants) {
    const d = c.data!.data;
    const init = opts.externalData
      ? `data(${opts.externalData.append(new Uint8Array(d.buffer, d.byteOffset, d.byteLength))}, ${d.byteLength})`
      : `[${Array.from(d, numToText).join(', ')}]`;
    lines.push(`  const ${ref(c)}: ${typeToString(c.type)} = ${init}`);
  }
  for (const n of g.nodes) {
    const ins = n.inputs.map((x) => (x ? ref(x) : '_')).join(', ');
    const outs = n.outputs.map((o) => `${ref(o)}: ${typeToString(o.type)}`).join(', ');
    const keys = Object.keys(n.attrs).sort();
    const attrs = keys.length ? ` {${keys.map((k) => `${k}=${attrText(n.attrs[k]!)}`).join(', ')}}` : '';
    const name = opts.canonical ? '' : ` @${nameText(n.name)}`;
    lines.push(`  ${outs} = ${n.op}(${ins})${attrs}${name}`);
  }
  for (const o of g.outputs) lines.push(`  output ${ref(o)}`);
  lines.push('}');
  return lines.join('\n') + '\n';
}

// ---- parser ----

type Tok = { k: 'id' | 'num' | 'str' | 'val' | 'node' | 'p'; v: string; pos: number };

function tokenize(src: string): Tok[] {
  const toks: Tok[] = [];
  const re =
    /\s+|#[^\n]*|(%|@)("(?:[^"\\]|\\.)*"|[A-Za-z0-9_.]+)|("(?:[^"\\]|\\.)*")|(-?(?:inf|nan)\b|-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)|([A-Za-z_][A-Za-z0-9_]*)|([{}()[\]<>,:=*+_-])/y;
  let pos = 0;
  while (pos < src.length) {
    re.lastIndex = pos;
    const m = re.exec(src);
    if (!m) throw new ParseError(`unexpected character '${src[pos]}' at ${lineCol(src, pos)}`);
    if (m[1]) {
      const raw = m[2]!;
      toks.push({ k: m[1] === '%' ? 'val' : 'node', v: raw.startsWith('"') ? unquote(raw, src, pos) : raw, pos });
    } else if (m[3]) toks.push({ k: 'str', v: unquote(m[3], src, pos), pos });
    else if (m[4]) toks.push({ k: 'num', v: m[4], pos });
    // a lone `_` (an absent input) matches the identifier pattern first: it is punctuation
    else if (m[5]) toks.push({ k: m[5] === '_' ? 'p' : 'id', v: m[5], pos });
    else if (m[6]) toks.push({ k: 'p', v: m[6], pos });
    pos = re.lastIndex;
  }
  return toks;
}

function unquote(raw: string, src: string, pos: number): string {
  try {
    return JSON.parse(raw) as string;
  } catch {
    throw new ParseError(`bad string literal ${raw} at ${lineCol(src, pos)}`);
  }
}

function lineCol(src: string, pos: number): string {
  const before = src.slice(0, pos).split('\n');
  return `line ${before.length}, column ${before[before.length - 1]!.length + 1}`;
}

function parseNum(s: string): number {
  if (s === 'nan' || s === '-nan') return NaN;
  if (s === 'inf') return Infinity;
  if (s === '-inf') return -Infinity;
  return Number(s);
}

/**
 * Parses IR text written by {@link printGraph}; constants written `data(offset, bytes)` are read from `opts.data`.
 * The result is not verified (call {@link verify}).
 *
 * @throws ParseError with the line and column for malformed text, an unknown op, a name defined twice or used before
 * its definition, or external data without (or outside) `opts.data`.
 */
export function parseGraph(src: string, opts: ParseOptions = {}): Graph {
  const toks = tokenize(src);
  let i = 0;
  const fail = (msg: string, t: Tok | undefined = toks[i]): never => {
    throw new ParseError(`${msg} at ${t ? lineCol(src, t.pos) : 'end of input'}`);
  };
  const peek = () => toks[i];
  const next = () => toks[i++] ?? fail('unexpected end of input');
  const expect = (v: string) => {
    const t = next();
    if (t.v !== v || t.k === 'str') fail(`expected '${v}', found '${t.v}'`, t);
  };
  const isP = (v: string) => peek()?.k === 'p' && peek()!.v === v;
  /** `data(offset, bytes)`: a slice of the external blob. */
  const external = (at: Tok): Uint8Array => {
    next();
    expect('(');
    const offset = number();
    expect(',');
    const bytes = number();
    expect(')');
    const blob = opts.data;
    if (!blob) return fail('constant data is external (data(...)) but no data blob was given', at);
    if (
      !Number.isInteger(offset) ||
      !Number.isInteger(bytes) ||
      offset < 0 ||
      bytes < 0 ||
      offset + bytes > blob.length
    )
      return fail(`data(${offset}, ${bytes}) is outside the ${blob.length}-byte data blob`, at);
    return blob.subarray(offset, offset + bytes);
  };
  const isId = (v: string) => peek()?.k === 'id' && peek()!.v === v;
  const number = (): number => {
    const t = next();
    if (t.k !== 'num' && !(t.k === 'id' && (t.v === 'nan' || t.v === 'inf')))
      fail(`expected a number, found '${t.v}'`, t);
    return parseNum(t.v);
  };
  const numberList = (): number[] => {
    expect('[');
    const out: number[] = [];
    while (!isP(']')) {
      out.push(number());
      if (!isP(']')) expect(',');
    }
    expect(']');
    return out;
  };
  const dims = (): Dim[] => {
    expect('[');
    const out: Dim[] = [];
    while (!isP(']')) {
      const t = next();
      if (t.k === 'num') out.push(Number(t.v));
      else if (t.k === 'id' || t.k === 'str') out.push(t.v);
      else fail(`expected a dimension, found '${t.v}'`, t);
      if (!isP(']')) expect(',');
    }
    expect(']');
    return out;
  };
  const dtype = (): DType => {
    const t = next();
    if (t.k !== 'id' || !isDType(t.v)) return fail(`unknown dtype '${t.v}'`, t);
    return t.v;
  };
  const layout = (): Layout => {
    if (isId('blockq')) {
      next();
      expect('(');
      const kv: Record<string, string> = {};
      while (!isP(')')) {
        const k = next().v;
        expect('=');
        kv[k] = next().v;
        if (!isP(')')) expect(',');
      }
      expect(')');
      const scale = kv['scale'] ?? 'f32';
      if (!isDType(scale)) fail(`bad scale dtype '${scale}'`);
      return {
        kind: 'blockq',
        bits: Number(kv['bits']),
        group: Number(kv['group']),
        axis: Number(kv['axis']),
        scale: scale as DType,
        zeroPoint: kv['zp'] === '1',
      };
    }
    if (isId('nm')) {
      next();
      expect('(');
      const n = number();
      expect(':');
      const m = number();
      expect(')');
      return { kind: 'nm', n, m };
    }
    if (isId('csr')) {
      next();
      return { kind: 'csr' };
    }
    if (isId('bsr')) {
      next();
      expect('(');
      const t = next().v; // "4x4" tokenizes as number 4 then id x4
      const rest = next().v;
      expect(')');
      return { kind: 'bsr', block: [Number(t), Number(rest.slice(1))] };
    }
    return { kind: 'dense' };
  };
  const type = (): TensorType => {
    const dt = dtype();
    const shape = dims();
    return tensorType(dt, shape, layout());
  };
  const attrValue = (): AttrValue => {
    const t = peek();
    if (!t) return fail('expected an attribute value');
    if (t.k === 'str') return next().v;
    if (t.k === 'num' || (t.k === 'id' && (t.v === 'nan' || t.v === 'inf'))) return number();
    if (t.k === 'id' && (t.v === 'true' || t.v === 'false')) return next().v === 'true';
    if (t.k === 'id' && t.v === 'tensor') {
      next();
      expect('<');
      const dt = dtype();
      const shape = dims();
      expect('>');
      const data = numberList();
      if (shape.some((d) => typeof d !== 'number')) fail('tensor attribute needs a static shape');
      try {
        return makeTensor(dt, shape as number[], data);
      } catch (e) {
        return fail((e as Error).message);
      }
    }
    if (t.k === 'p' && t.v === '[') {
      next();
      const items: (number | string)[] = [];
      while (!isP(']')) {
        const u = peek();
        items.push(u?.k === 'str' ? next().v : number());
        if (!isP(']')) expect(',');
      }
      expect(']');
      return items as number[] | string[];
    }
    return fail(`bad attribute value '${t.v}'`);
  };

  const g = new Graph();
  const vals = new Map<string, Value>();
  const valueRef = (): Value => {
    const t = next();
    if (t.k !== 'val') fail(`expected a value (%name), found '${t.v}'`, t);
    const v = vals.get(t.v);
    if (!v) return fail(`undefined value %${t.v}`, t);
    return v;
  };
  const define = (t: Tok, v: Value) => {
    if (vals.has(t.v)) fail(`value %${t.v} defined twice`, t);
    vals.set(t.v, v);
  };

  expect('graph');
  const gname = next();
  g.name = gname.v;
  expect('{');
  while (!isP('}')) {
    const t = peek() ?? fail("unexpected end of input: missing '}'");
    if (t.k === 'id' && t.v === 'input') {
      next();
      const n = next();
      if (n.k !== 'val') fail('expected %name', n);
      expect(':');
      const v = new Value(n.v, type());
      define(n, v);
      g.inputs.push(v);
    } else if (t.k === 'id' && t.v === 'const') {
      next();
      const n = next();
      if (n.k !== 'val') fail('expected %name', n);
      expect(':');
      const ty = type();
      expect('=');
      const data = isId('data') ? external(n) : numberList();
      if (ty.shape.some((d) => typeof d !== 'number')) fail('a constant needs a static shape', n);
      let tensor: Tensor;
      try {
        if (data instanceof Uint8Array) {
          const count = (ty.shape as number[]).reduce((a, b) => a * b, 1);
          const arr = naturalArray(ty.dtype, count);
          if (arr.byteLength !== data.byteLength) {
            throw new Error(`data holds ${data.byteLength} bytes, ${typeToString(ty)} needs ${arr.byteLength}`);
          }
          new Uint8Array(arr.buffer).set(data);
          tensor = makeTensor(ty.dtype, ty.shape as number[], arr);
        } else tensor = makeTensor(ty.dtype, ty.shape as number[], data);
      } catch (e) {
        return fail((e as Error).message, n);
      }
      const v = new Value(n.v, ty, tensor);
      define(n, v);
      g.constants.push(v);
    } else if (t.k === 'id' && t.v === 'output') {
      next();
      g.outputs.push(valueRef());
    } else if (t.k === 'val') {
      const outs: [Tok, TensorType][] = [];
      for (;;) {
        const n = next();
        if (n.k !== 'val') fail('expected %name', n);
        expect(':');
        outs.push([n, type()]);
        if (isP(',')) next();
        else break;
      }
      expect('=');
      const opTok = next();
      if (opTok.k !== 'id') fail(`expected an op name, found '${opTok.v}'`, opTok);
      let def;
      try {
        def = getOp(opTok.v);
      } catch (e) {
        return fail((e as Error).message, opTok);
      }
      expect('(');
      const ins: (Value | null)[] = [];
      while (!isP(')')) {
        if (isP('_')) {
          next();
          ins.push(null);
        } else ins.push(valueRef());
        if (!isP(')')) expect(',');
      }
      expect(')');
      const attrs: Record<string, AttrValue> = {};
      if (isP('{')) {
        next();
        while (!isP('}')) {
          const k = next();
          if (k.k !== 'id') fail(`expected an attribute name, found '${k.v}'`, k);
          expect('=');
          attrs[k.v] = attrValue();
          if (!isP('}')) expect(',');
        }
        expect('}');
      }
      let nodeName = `${def.name}_${g.nodes.length}`;
      if (peek()?.k === 'node') nodeName = next().v;
      const outVals = outs.map(([n, ty]) => {
        const v = new Value(n.v, ty);
        define(n, v);
        return v;
      });
      g.nodes.push(new Node(nodeName, def.name, ins, outVals, attrs as Attrs));
    } else {
      fail(`unexpected '${t.v}'`, t);
    }
  }
  expect('}');
  if (i !== toks.length) fail('trailing input after graph');
  return g;
}

/** 64-bit FNV-1a over the canonical text, as 16 hex digits: equal for graphs equal up to renaming. */
export function structuralHash(g: Graph): string {
  return fnv1a64(printGraph(g, { canonical: true }));
}

/**
 * A 64-bit FNV-1a hash of `s` as 16 hex digits: one step per UTF-16 code unit (standard FNV-1a for Latin-1 text; a
 * code unit above 0xFF also mixes its high byte into the state).
 */
export function fnv1a64(s: string): string {
  // Two 32-bit lanes emulate the 64-bit multiply by the FNV prime 0x100000001b3.
  let h0 = 0x2325; // low 16 bits … the offset basis 0xcbf29ce484222325 split into 16-bit limbs
  let h1 = 0x8422;
  let h2 = 0x9ce4;
  let h3 = 0xcbf2;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    h0 ^= c & 0xff;
    if (c > 0xff) h1 ^= c >> 8;
    // multiply by 0x0000_0100_0000_01b3 (limbs: 0x01b3, 0, 0x0100, 0)
    const t0 = h0 * 0x1b3;
    const t1 = h1 * 0x1b3;
    const t2 = h2 * 0x1b3 + h0 * 0x100;
    const t3 = h3 * 0x1b3 + h1 * 0x100;
    h0 = t0 & 0xffff;
    const c1 = t1 + (t0 >>> 16);
    h1 = c1 & 0xffff;
    const c2 = t2 + Math.floor(c1 / 0x10000);
    h2 = c2 & 0xffff;
    h3 = (t3 + Math.floor(c2 / 0x10000)) & 0xffff;
  }
  return [h3, h2, h1, h0].map((x) => x.toString(16).padStart(4, '0')).join('');
}

export { dimToString };
