import { describe, expect, it } from 'vitest';
import { ParseError } from '../../ir/errors.js';
import '../../ir/ops/index.js';
import { parseGraph, printGraph, structuralHash } from '../../ir/text.js';
import { verify } from '../../ir/verify.js';

const SRC = `graph "my model" {
  input %"x:0": f32[batch,seq,4]
  input %w4: u4[4,8] blockq(bits=4,group=32,axis=1,scale=f16,zp=1)
  const %c: f32[3] = [nan, -inf, -0]
  const %s: i64[2] = [0, -1]
  %y: f32[batch,seq,4] = gelu(%"x:0") {approximate="tanh"} @"node/0"
  %r: f32[batch,"seq*4"] = reshape(%y, %s) @r
  %a: f32[batch,2], %b: f32[batch,"seq*4-2"] = split(%r) {axis=1, split=[2, -1]} @sp
  output %y
}
`;

describe('IR text format', () => {
  it('parses quoted names, layouts, nan/inf/-0 constants and prints them back exactly', () => {
    const g = parseGraph(SRC.replace(/ {2}%a.*\n/, ''));
    expect(g.name).toBe('my model');
    expect(g.inputs[1]!.type.layout).toEqual({
      kind: 'blockq',
      bits: 4,
      group: 32,
      axis: 1,
      scale: 'f16',
      zeroPoint: true,
    });
    const c = Array.from(g.constants[0]!.data!.data);
    expect(Number.isNaN(c[0])).toBe(true);
    expect(c[1]).toBe(-Infinity);
    expect(Object.is(c[2], -0)).toBe(true);
    const text = printGraph(g);
    expect(printGraph(parseGraph(text))).toBe(text);
    expect(g.nodes[0]!.name).toBe('node/0');
  });

  it('an absent optional input `_` round-trips, between inputs and as the last one', () => {
    const src = `graph g {
  input %x: f32[4]
  input %q: f32[1,2,1,2]
  input %k: f32[1,2,3,2]
  input %pk: f32[1,2,2,2]
  input %pv: f32[1,2,2,2]
  %a: f32[2], %b: f32[2] = split(%x, _) {axis=0, split=[2, 2]} @s
  %y: f32[1,2,1,2], %pko: f32[1,2,5,2], %pvo: f32[1,2,5,2] = attention(%q, %k, %k, _, %pk, %pv) @att
  output %a
  output %y
}
`;
    const g = parseGraph(src);
    expect(g.nodes[0]!.inputs[1]).toBeNull();
    expect(g.nodes[1]!.inputs[3]).toBeNull();
    expect(printGraph(g)).toBe(src);
  });

  it('reports syntax errors with line and column', () => {
    expect(() => parseGraph('graph g {\n  input %x: f99[2]\n}')).toThrow(ParseError);
    expect(() => parseGraph('graph g {\n  input %x: f99[2]\n}')).toThrow(/line 2/);
    expect(() => parseGraph('graph g {\n  output %nope\n}')).toThrow(/undefined value %nope/);
    expect(() => parseGraph('graph g {\n  input %x: f32[2]\n  %y: f32[2] = frobnicate(%x)\n}')).toThrow(/unknown op/);
  });

  it('parsed graphs are checked by the verifier (a wrong declared type names the node)', () => {
    const g = parseGraph('graph g {\n  input %x: f32[2]\n  %y: f32[3] = relu(%x) @bad\n  output %y\n}');
    expect(() => verify(g)).toThrow(/bad/);
  });

  it('structural hash is stable and name-independent', () => {
    const a = parseGraph('graph a {\n  input %x: f32[2]\n  %y: f32[2] = relu(%x)\n  output %y\n}');
    const b = parseGraph('graph b {\n  input %q: f32[2]\n  %z: f32[2] = relu(%q) @other\n  output %z\n}');
    const c = parseGraph('graph c {\n  input %q: f32[2]\n  %z: f32[2] = neg(%q)\n  output %z\n}');
    expect(structuralHash(a)).toBe(structuralHash(b));
    expect(structuralHash(a)).not.toBe(structuralHash(c));
    expect(structuralHash(a)).toMatch(/^[0-9a-f]{16}$/);
  });
});
