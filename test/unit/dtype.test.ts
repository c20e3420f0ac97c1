import { describe, expect, it } from 'vitest';
import {
  bf16BitsToNumber,
  f16BitsToNumber,
  numberToBF16Bits,
  numberToF16Bits,
  roundBF16,
  roundF16,
  roundToDtype,
  storageBytes,
} from '../../ir/dtype.js';
import { erf, geluTanh } from '../../ir/ops/math.js';

describe('f16 rounding (IEEE binary16, nearest even)', () => {
  it('rounds hand-worked values', () => {
    expect(roundF16(1)).toBe(1);
    expect(roundF16(1 + 2 ** -11)).toBe(1); // exact tie → even (1.0)
    expect(roundF16(1 + 3 * 2 ** -11)).toBe(1 + 2 ** -9); // tie → even mantissa 2
    expect(roundF16(65504)).toBe(65504);
    expect(roundF16(65519)).toBe(65504);
    expect(roundF16(65520)).toBe(Infinity);
    expect(roundF16(2 ** -24)).toBe(2 ** -24); // smallest subnormal
    expect(roundF16(2 ** -25)).toBe(0); // tie between 0 and 2^-24 → 0
    expect(roundF16(3 * 2 ** -25)).toBe(2 ** -23);
    expect(roundF16(-0.1)).toBe(-0.0999755859375);
    expect(Number.isNaN(roundF16(NaN))).toBe(true);
  });
  it('bit patterns', () => {
    expect(f16BitsToNumber(0x3c00)).toBe(1);
    expect(f16BitsToNumber(0x7bff)).toBe(65504);
    expect(f16BitsToNumber(0x0001)).toBe(2 ** -24);
    expect(f16BitsToNumber(0xc000)).toBe(-2);
    expect(f16BitsToNumber(0x7c00)).toBe(Infinity);
    for (let h = 0; h < 0x10000; h += 7) {
      const v = f16BitsToNumber(h);
      if (!Number.isNaN(v)) expect(numberToF16Bits(v)).toBe(h === 0x8000 ? 0x8000 : h);
    }
  });
});

describe('bf16 rounding', () => {
  it('rounds hand-worked values', () => {
    expect(roundBF16(1 + 2 ** -8)).toBe(1); // tie → even
    expect(roundBF16(1 + 3 * 2 ** -8)).toBe(1 + 2 ** -6);
    expect(roundBF16(0.8191054463386536)).toBe(0.8203125);
    expect(bf16BitsToNumber(0x3f80)).toBe(1);
    expect(numberToBF16Bits(-2)).toBe(0xc000);
  });
});

describe('integer storage', () => {
  it('wraps like two’s complement and truncates toward zero', () => {
    expect(roundToDtype('u8', 256 + 3)).toBe(3);
    expect(roundToDtype('i8', 128)).toBe(-128);
    expect(roundToDtype('i8', -2.7)).toBe(-2);
    expect(roundToDtype('i4', 7)).toBe(7);
    expect(roundToDtype('i4', 8)).toBe(-8);
    expect(roundToDtype('u4', 17)).toBe(1);
    expect(roundToDtype('bool', 0.5)).toBe(1);
    expect(storageBytes('i4', 5)).toBe(3);
  });
});

describe('special functions', () => {
  it('erf against tabulated values', () => {
    expect(erf(0)).toBe(0);
    expect(erf(0.5)).toBeCloseTo(0.5204998778130465, 15);
    expect(erf(1)).toBeCloseTo(0.8427007929497149, 15);
    expect(erf(-2)).toBeCloseTo(-0.9953222650189527, 15);
    expect(erf(3.5)).toBeCloseTo(0.9999992569016276, 15);
    expect(erf(6)).toBe(1);
  });
  it('gelu tanh form', () => {
    expect(geluTanh(0)).toBe(0);
    expect(geluTanh(1)).toBeCloseTo(0.8411919906082768, 14);
  });
});
