import { describe, expect, it } from 'vitest';
import { KilnError, ParseError } from '../../ir/errors.js';
import { byteLevelBpeTokenizer } from '../../src/tokenizers/bpe.js';

describe('GPT-2 byte-level BPE (hand-made vocabulary)', () => {
  // GPT-2's byte table: space 0x20 is the 33rd non-printable byte → U+0120 'Ġ'; '\n' → U+010A 'Ċ';
  // 'é' = C3 A9, both printable Latin-1, so they stand for themselves: 'Ã' '©'
  const tokens = ['<|endoftext|>', 'a', 'b', 'h', 'i', 'Ġ', 'Ċ', 'hi', 'Ġhi', 'ab', 'Ã', '©', 'Ġh'];
  const merges = ['h i', 'Ġ hi', 'a b', 'Ġ h'];
  const tok = byteLevelBpeTokenizer({ tokens, merges, bos: undefined, eos: 0, control: new Set([0]) });

  it('pre-tokenizes, then merges by rank (not position)', () => {
    // 'hi' → h i → hi (rank 0); ' hi' → Ġ h i: 'h i' (rank 0) before 'Ġ h' (rank 3) → Ġ hi → Ġhi (rank 1);
    // ' ab' → Ġ a b → Ġ ab ('Ġ ab' is no merge)
    expect(tok.encode('hi hi ab')).toEqual([7, 8, 5, 9]);
    expect(tok.decode([7, 8, 5, 9])).toBe('hi hi ab');
    expect(tok.encode('\nh')).toEqual([6, 3]);
    expect(tok.encode('', { bos: true })).toEqual([]);
  });

  it('multi-byte characters go through the byte table and stream out whole', () => {
    expect(tok.encode('é')).toEqual([10, 11]);
    const d = tok.streamDecoder();
    expect(d.push(10)).toBe('');
    expect(d.push(11)).toBe('é');
    expect(d.push(0)).toBe(''); // special tokens decode to nothing
    expect(d.flush()).toBe('');
  });

  it('typed errors: a byte without a token, ids outside the vocabulary, malformed merges', () => {
    expect(() => tok.encode('z')).toThrow(KilnError);
    expect(() => tok.decode([13])).toThrow(KilnError);
    expect(() => byteLevelBpeTokenizer({ tokens, merges: ['hi'], bos: undefined, eos: undefined })).toThrow(ParseError);
  });
});
