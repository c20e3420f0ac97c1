/**
 * The CUDA C dialect: `extern "C" __global__` kernels with `__launch_bounds__`, buffers and then uniforms as kernel
 * parameters (in that order), shared arrays through kiln_cuda_shared.h's KILN_SHARED (so the same source also runs
 * in the CPU emulator), `__syncthreads`, `__shfl_xor_sync` for warp-level reduction steps, cuda_fp16 for f16.
 */
import type { BinOp, Expr, KType, Kernel, UnOp } from '../kir.js';
import { fnv1a64 } from '../../ir/text.js';
import { CLikeRenderer, floatText } from './clike.js';

const C_TYPE: Record<KType, string> = { f32: 'float', f16: '__half', i32: 'int', u32: 'unsigned', bool: 'bool' };

const STORAGE_C: Record<string, string> = { f32: 'float', f16: '__half', i32: 'int' };

/**
 * Integer division and remainder without undefined behaviour: C leaves `INT_MIN / -1` and `x / 0` undefined (x86
 * raises SIGFPE, which kills the emulator). These give INT_MIN and 0 for INT_MIN / -1 and % -1 (as WGSL does and the
 * reference's i32 wrap gives), and 0 for x / 0 and x % 0 (the reference; WGSL would give x for x / 0).
 */
const INT_DIV_HELPERS: Record<'div' | 'mod', Record<'i32' | 'u32', string>> = {
  div: {
    i32:
      '__device__ __forceinline__ int kiln_div_i32(int a, int b) {\n' +
      '  return b == 0 ? 0 : b == -1 ? (int)(0u - (unsigned)a) : a / b;\n}\n',
    u32: '__device__ __forceinline__ unsigned kiln_div_u32(unsigned a, unsigned b) { return b == 0u ? 0u : a / b; }\n',
  },
  mod: {
    i32: '__device__ __forceinline__ int kiln_mod_i32(int a, int b) { return (b == 0 || b == -1) ? 0 : a % b; }\n',
    u32: '__device__ __forceinline__ unsigned kiln_mod_u32(unsigned a, unsigned b) { return b == 0u ? 0u : a % b; }\n',
  },
};

/** A rendered integer literal that is neither 0 nor -1: dividing by it is always defined, so no helper is needed. */
function safeDivisor(b: string): boolean {
  const m = /^(?:(\d+)u?|\((-\d+)\))$/.exec(b);
  if (!m) return false;
  const v = Number(m[1] ?? m[2]);
  return v !== 0 && v !== -1;
}

/**
 * Renders a legalized kernel as CUDA C: an `extern "C" __global__` function taking the buffers, then the uniforms,
 * for NVRTC / nvcc after {@link CUDA_PRELUDE}, or for the CPU emulator (which includes its own prelude).
 * `new CudaRenderer().render(kernel)`.
 */
export class CudaRenderer extends CLikeRenderer {
  readonly name = 'cuda';

  typeName(t: KType): string {
    return C_TYPE[t];
  }

  literal(t: KType, value: number): string {
    switch (t) {
      case 'bool':
        return value ? 'true' : 'false';
      case 'i32':
        return value === -2147483648 ? '(-2147483647 - 1)' : value < 0 ? `(${value})` : String(value);
      case 'u32':
        return `${value >>> 0}u`;
      case 'f32':
      case 'f16': {
        let s: string;
        if (Number.isNaN(value)) s = '__int_as_float(0x7fc00000)';
        else if (value === Infinity) s = '__int_as_float(0x7f800000)';
        else if (value === -Infinity) s = '__int_as_float(0xff800000)';
        else s = `${floatText(value)}f`;
        if (s.startsWith('-')) s = `(${s})`;
        return t === 'f16' ? `__float2half_rn(${s})` : s;
      }
    }
  }

  declLet(name: string, t: KType, value: string): string {
    return `const ${C_TYPE[t]} ${name} = ${value};`;
  }
  declVar(name: string, t: KType, value: string): string {
    return `${C_TYPE[t]} ${name} = ${value};`;
  }
  forHeader(v: string, start: string, end: string, step: string): string {
    const t = this.locals.get(v) ?? 'i32';
    return `for (${C_TYPE[t]} ${v} = ${start}; ${v} < ${end}; ${v} += ${step})`;
  }
  builtin(e: Extract<Expr, { k: 'builtin' }>): string {
    const base = { local_id: 'threadIdx', group_id: 'blockIdx', num_groups: 'gridDim' }[e.which];
    return `${base}.${'xyz'[e.dim]}`;
  }
  uniform(name: string): string {
    return name;
  }
  castExpr(to: KType, from: KType, a: string): string {
    if (to === 'f16') return from === 'f32' ? `__float2half_rn(${a})` : `__float2half_rn((float)(${a}))`;
    if (from === 'f16') return to === 'f32' ? `__half2float(${a})` : this.castExpr(to, 'f32', `__half2float(${a})`);
    // float -> int saturates and maps NaN to 0 on the GPU (cvt.rzi) and in WGSL; a plain C cast is UB out of range
    // (x86 gives INT_MIN), so the emulator would differ: spell it with the intrinsics, which saturate everywhere.
    if (from === 'f32' && to === 'i32') return `__float2int_rz(${a})`;
    if (from === 'f32' && to === 'u32') return `__float2uint_rz(${a})`;
    return `((${C_TYPE[to]})(${a}))`;
  }
  bitcastExpr(to: KType, from: KType, a: string): string {
    if (to === 'f32') return from === 'u32' ? `__uint_as_float(${a})` : `__int_as_float(${a})`;
    if (from === 'f32') return to === 'u32' ? `__float_as_uint(${a})` : `__float_as_int(${a})`;
    return `((${C_TYPE[to]})(${a}))`;
  }
  selectExpr(cond: string, a: string, b: string): string {
    return `(${cond} ? ${a} : ${b})`;
  }
  barrier(): string {
    return '__syncthreads();';
  }
  protected override binary(op: BinOp, t: KType, a: string, b: string, at: KType): string {
    if ((op === 'div' || op === 'mod') && (at === 'i32' || at === 'u32') && !safeDivisor(b)) {
      this.helpers.add(INT_DIV_HELPERS[op][at]);
      return `kiln_${op}_${at}(${a}, ${b})`;
    }
    return super.binary(op, t, a, b, at);
  }
  /** Shift amounts are taken mod 32 (as WGSL does); C leaves shifts by >= 32 undefined (PTX clamps, x86 masks). */
  protected override shift(op: '<<' | '>>', a: string, b: string): string {
    return /^\d+u?$/.test(b) && parseInt(b, 10) < 32 ? `(${a} ${op} ${b})` : `(${a} ${op} ((${b}) & 31))`;
  }
  protected call2(fn: 'min' | 'max' | 'pow' | 'fmod', t: KType, a: string, b: string): string {
    if (t === 'f16') return `__float2half_rn(${this.call2(fn, 'f32', `__half2float(${a})`, `__half2float(${b})`)})`;
    if (t === 'f32') return `${{ min: 'fminf', max: 'fmaxf', pow: 'powf', fmod: 'fmodf' }[fn]}(${a}, ${b})`;
    return `${fn}(${a}, ${b})`;
  }
  unary(op: UnOp, t: KType, a: string): string {
    if (t === 'f16' && op !== 'neg' && op !== 'not') {
      const r = this.unary(op, 'f32', `__half2float(${a})`);
      return op === 'isnan' || op === 'isinf' ? r : `__float2half_rn(${r})`;
    }
    const isF = t === 'f32';
    switch (op) {
      case 'neg':
        return `(-${a})`;
      case 'not':
        return `(!${a})`;
      case 'abs':
        return isF ? `fabsf(${a})` : `abs(${a})`;
      case 'round_even':
        return `rintf(${a})`; // rint rounds half to even in the default rounding mode
      case 'trunc':
        return `truncf(${a})`;
      case 'isnan':
        return `isnan(${a})`;
      case 'isinf':
        return `isinf(${a})`;
      case 'sign':
        return isF ? `((float)((${a} > 0.0f) - (${a} < 0.0f)))` : `((${a} > 0) - (${a} < 0))`;
      default:
        return `${op}f(${a})`; // expf logf sqrtf rsqrtf tanhf sinf cosf floorf ceilf erff
    }
  }
  dot4(signed: boolean, a: string, b: string): string {
    // sm_61+; the unsigned overload's sum (≤ 4·255²) fits an int
    return signed ? `__dp4a((int)(${a}), (int)(${b}), 0)` : `((int)__dp4a((unsigned)(${a}), (unsigned)(${b}), 0u))`;
  }
  shuffleXor(t: KType, a: string, mask: number): string {
    // __shfl_xor_sync has no bool overload: go through int
    if (t === 'bool') return `(__shfl_xor_sync(0xffffffffu, (int)(${a}), ${mask}) != 0)`;
    return `__shfl_xor_sync(0xffffffffu, ${a}, ${mask})`;
  }

  module(k: Kernel, body: string): string {
    const params = [
      ...k.buffers.map((b) => {
        const t = STORAGE_C[b.storage] ?? 'unsigned';
        return `${b.access === 'read' ? 'const ' : ''}${t}* __restrict__ ${b.name}`;
      }),
      ...k.uniforms.map((u) => `${C_TYPE[u.type]} ${u.name}`),
    ];
    const threads = k.workgroup[0] * k.workgroup[1] * k.workgroup[2];
    const shared = k.shared.map((s) => `  KILN_SHARED(${C_TYPE[s.type]}, ${s.name}, ${s.size});\n`).join('');
    // helpers are guarded so that many kernels can share one translation unit
    const helpers = [...this.helpers].map((h) => {
      const g = `KILN_HELPER_${fnv1a64(h)}`;
      return `#ifndef ${g}\n#define ${g}\n${h}#endif\n`;
    });
    return (
      helpers.join('') +
      `extern "C" __global__ void __launch_bounds__(${threads}) ${k.name}(${params.join(', ')}) {\n` +
      shared +
      body +
      `}\nKILN_EMU_REGISTER(${k.name});\n`
    );
  }
}

/** Prelude of a CUDA translation unit holding kiln kernels (nvcc / NVRTC side; the emulator force-includes its own). */
export const CUDA_PRELUDE = `#include <cuda_fp16.h>\n#include "kiln_cuda_shared.h"\n`;
