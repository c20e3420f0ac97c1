import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KilnError, ParseError } from '../../ir/errors.js';
import { loadLlama2cTokenizer } from '../../src/tokenizers/llama2c.js';
import { PROP_RUNS, SHARED } from '../helpers/paths.js';
import { fileProbe, requireTool } from '../helpers/tools.js';

const TOK = resolve(SHARED, 'models/tok512.bin');
const CALIB = resolve(SHARED, 'data/tinystories-calib.txt');

/** A llama2.c tokenizer file from (piece, score) pairs. */
function tokFile(pieces: [string, number][]): Uint8Array {
  const enc = new TextEncoder();
  const parts = pieces.map(([p, s]) => {
    const b = enc.encode(p);
    const out = new Uint8Array(8 + b.length);
    const dv = new DataView(out.buffer);
    dv.setFloat32(0, s, true);
    dv.setInt32(4, b.length, true);
    out.set(b, 8);
    return out;
  });
  const total = 4 + parts.reduce((n, p) => n + p.length, 0);
  const file = new Uint8Array(total);
  new DataView(file.buffer).setInt32(0, 16, true);
  let o = 4;
  for (const p of parts) {
    file.set(p, o);
    o += p.length;
  }
  return file;
}

describe('llama2.c tokenizer (hand-made vocabulary)', () => {
  const bytes = Array.from({ length: 256 }, (_, b): [string, number] => [
    `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`,
    0,
  ]);
  // ids: 0 unk, 1 BOS, 2 EOS, 3..258 bytes, 259 ' ', 260 'a', 261 'b', 262 'ab', 263 ' a', 264 'ba', 265 ' ab'
  const vocab: [string, number][] = [
    ['<unk>', 0],
    ['\n<s>\n', 0],
    ['\n</s>\n', 0],
    ...bytes,
    [' ', -100],
    ['a', -100],
    ['b', -100],
    ['ab', -1],
    [' a', -2],
    ['ba', -3],
    [' ab', -0.5],
  ];
  const tok = loadLlama2cTokenizer(tokFile(vocab), vocab.length);

  it('merges the highest-scoring pair first, ties to the leftmost', () => {
    // " ab": pairs ' '+'a' (-2), 'a'+'b' (-1) → 'ab' first, then ' '+'ab' = ' ab' (-0.5)
    expect(tok.encode('ab')).toEqual([265]);
    // " bab": ' '+'b' no, 'b'+'a' (-3), 'a'+'b' (-1) → ' ', 'b', 'ab'; then 'b'+'ab' no, ' '+'b' no
    expect(tok.encode('bab')).toEqual([259, 261, 262]);
    // " abab": 'ab' at 1 and 3 tie (-1): leftmost first → ' ','ab','a','b' → then 'ab' (-1) → ' ','ab','ab'
    // → ' ab' (-0.5) beats 'ab' (-1) → ' ab','a','b' → ' ab','ab'
    expect(tok.encode('abab', { bos: true })).toEqual([1, 265, 262]);
  });

  it('falls back to <0xNN> byte pieces (id = byte + 3) for characters that are not pieces', () => {
    // 'é' = C3 A9, '€' = E2 82 AC
    expect(tok.encode('é€')).toEqual([259, 0xc3 + 3, 0xa9 + 3, 0xe2 + 3, 0x82 + 3, 0xac + 3]);
    expect(tok.decode([1, 259, 0xc3 + 3, 0xa9 + 3])).toBe('é');
  });

  it('decodes: BOS / EOS to nothing, the prefix space dropped at the start and after BOS only', () => {
    expect(tok.decode([1, 265, 262, 2])).toBe('abab');
    expect(tok.decode([265, 262])).toBe('abab');
    expect(tok.decode([262, 265])).toBe('ab ab');
    expect(tok.decode([1, 265, 1, 265])).toBe('abab');
    expect(tok.encode('')).toEqual([]);
    expect(tok.encode('', { bos: true })).toEqual([1]);
  });

  it('streams: a multi-byte character split over byte pieces comes out whole once complete', () => {
    const d = tok.streamDecoder();
    expect(d.push(1)).toBe('');
    expect(d.push(263)).toBe('a');
    expect(d.push(0xe2 + 3)).toBe('');
    expect(d.push(0x82 + 3)).toBe('');
    expect(d.push(0xac + 3)).toBe('€');
    expect(d.push(0xe2 + 3)).toBe('');
    expect(d.flush()).toBe('\ufffd'); // an incomplete character at the end
  });

  it('rejects ids outside the vocabulary and malformed files with typed errors', () => {
    expect(() => tok.decode([vocab.length])).toThrow(KilnError);
    expect(() => tok.decode([-1])).toThrow(KilnError);
    expect(() => tok.decode([1.5])).toThrow(KilnError);
    const file = tokFile(vocab);
    expect(() => loadLlama2cTokenizer(file.subarray(0, 100), vocab.length)).toThrow(ParseError);
    expect(() => loadLlama2cTokenizer(file, vocab.length + 1)).toThrow(ParseError);
    expect(() => loadLlama2cTokenizer(file, 2 ** 31)).toThrow(ParseError);
    expect(() => loadLlama2cTokenizer(file, 0)).toThrow(ParseError);
    const neg = file.slice();
    new DataView(neg.buffer).setInt32(8, -5, true); // length of token 0
    expect(() => loadLlama2cTokenizer(neg, vocab.length)).toThrow(/negative length/);
    const long = file.slice();
    new DataView(long.buffer).setInt32(8, 1e9, true);
    expect(() => loadLlama2cTokenizer(long, vocab.length)).toThrow(ParseError);
  });
});

const noShared = await requireTool('../shared/models', fileProbe(TOK, 'clone the shared data beside the repo'));
describe.skipIf(noShared)('tok512.bin', () => {
  const tok = loadLlama2cTokenizer(readFileSync(TOK), 512);

  it('encodes "Once upon a time" as llama2.c does and decodes it back', () => {
    // pieces 403 ' Once', 407 ' upon', 261 ' a', 378 ' time' (worked with llama2.c's naive merge loop)
    const ids = tok.encode('Once upon a time', { bos: true });
    expect(ids).toEqual([1, 403, 407, 261, 378]);
    expect(tok.decode(ids)).toBe('Once upon a time');
    expect(tok.decode([378, 261])).toBe('time a');
    expect([tok.vocabSize, tok.bos, tok.eos]).toEqual([512, 1, 2]);
  });

  it('byte fallback for characters outside the 512 pieces (ö, emoji)', () => {
    // ' He' 'll' 'o' ',' ' w' <0xC3> <0xB6> 'r' 'ld' '!' ' ' <0xF0> <0x9F> <0x98> <0x80>
    const ids = tok.encode('Hello, wörld! 😀');
    expect(ids).toEqual([346, 306, 414, 432, 263, 198, 185, 420, 341, 443, 410, 243, 162, 155, 131]);
    expect(tok.decode(ids)).toBe('Hello, wörld! 😀');
    expect(tok.encode("Lily's cat")).toEqual([317, 439, 419, 280, 294]);
  });

  it('decode(encode(s)) === s for random ASCII and Unicode text (multi-byte, emoji)', () => {
    const text = fc.oneof(
      fc.string({ unit: 'binary-ascii', maxLength: 60 }),
      fc.string({ unit: 'binary', maxLength: 40 }),
      fc.string({ unit: 'grapheme', maxLength: 20 }),
      fc
        .array(fc.constantFrom('Once', ' upon', ' a', 'time', '😀', 'é', '  ', '\n', 'Lily'), { maxLength: 20 })
        .map((a) => a.join('')),
    );
    fc.assert(
      fc.property(text, fc.boolean(), (s, bos) => {
        const ids = tok.encode(s, { bos });
        expect(tok.decode(ids)).toBe(s);
        // streaming gives the same text
        const d = tok.streamDecoder();
        expect(ids.map((id) => d.push(id)).join('') + d.flush()).toBe(s);
      }),
      { numRuns: PROP_RUNS * 5 },
    );
  });

  it('encodes the ~97 KB calibration text in well under a second (heap merge, not an O(n²) rescan)', () => {
    // A rescanning merge loop does ~n merges × n pairs ≈ 10^10 steps here: minutes, not this bound.
    const text = readFileSync(CALIB, 'utf8');
    expect(text.length).toBeGreaterThan(90_000);
    tok.encode(text.slice(0, 1000)); // warm up the JIT
    const t0 = performance.now();
    const ids = tok.encode(text, { bos: true });
    const ms = performance.now() - t0;
    expect(ms).toBeLessThan(1000);
    expect(ids.length).toBeGreaterThan(10_000);
    expect(ids.length).toBeLessThan(text.length / 1.5);
    expect(tok.decode(ids)).toBe(text);
  });
});
