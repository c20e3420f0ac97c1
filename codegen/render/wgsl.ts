/**
 * The WGSL dialect: storage-buffer bindings in @group(0) in parameter order, then one uniform struct at the next
 * binding (the WebGPU runtime's convention); `enable f16` only when the kernel uses f16; infinities and NaN
 * spelled as bitcasts (WGSL const-expressions reject them); erf as a helper (WGSL has none).
 */
import type { Expr, KType, Kernel, UnOp } from '../kir.js';
import { CLikeRenderer, floatText } from './clike.js';

// erfc with fractional error < 1.2e-7 everywhere (the Chebyshev-fitted formula of Numerical Recipes' erfcc), so the
// tail keeps its relative accuracy: gelu(x) for negative x is 0.5·x·erfc(-x/√2), a tiny number that must stay accurate.
const ERFC_HELPER = `fn kiln_erfc(x: f32) -> f32 {
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let p = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
  let r = t * exp(-z * z + p);
  return select(2.0 - r, r, x >= 0.0);
}
fn kiln_erf(x: f32) -> f32 {
  let y = 1.0 - kiln_erfc(abs(x));
  return select(-y, y, x >= 0.0);
}
`;

const TANH_HELPER = `fn kiln_tanh(x: f32) -> f32 {
  // tanh via exp of a clamped argument: some drivers return NaN from tanh() for |x| > ~88. NaN is tested by its bits
  // (clamp of NaN is implementation-defined and would turn it into a number).
  if ((bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u) { return x; }
  let e = exp(-2.0 * clamp(abs(x), 0.0, 40.0));
  let y = (1.0 - e) / (1.0 + e);
  return select(-y, y, x >= 0.0);
}
`;

// asin / acos through atan: the builtins of some drivers (Mesa lavapipe) are off by ~1e-4 near the ends of [-1, 1],
// while atan is accurate. (1 - x)(1 + x) keeps its relative accuracy as |x| → 1; |x| > 1 and NaN give NaN via sqrt.
const ASIN_ACOS_HELPER = `fn kiln_asin(x: f32) -> f32 {
  let s = sqrt((1.0 - x) * (1.0 + x));
  return select(atan(x / s), select(-1.5707963267948966, 1.5707963267948966, x > 0.0), s == 0.0);
}
fn kiln_acos(x: f32) -> f32 {
  let d = select(1.0 + x, 1.0, x == -1.0);
  return select(2.0 * atan(sqrt((1.0 - x) / d)), 3.141592653589793, x == -1.0);
}
`;

/**
 * Renders a legalized kernel as a WGSL compute shader for kiln's WebGPU runtime: storage buffers in @group(0) in
 * parameter order, then one uniform struct; `enable f16` only when used. `new WgslRenderer().render(kernel)`.
 */
export class WgslRenderer extends CLikeRenderer {
  // A conversion round trip may be folded away by shader compilers (Mesa's NIR drops f2f32(f2f16(x))); the builtin
  // made for it is not.
  protected override roundF16(a: string): string {
    return `quantizeToF16(${a})`;
  }

  readonly name = 'wgsl';

  typeName(t: KType): string {
    return t;
  }

  literal(t: KType, value: number): string {
    switch (t) {
      case 'bool':
        return value ? 'true' : 'false';
      case 'i32':
        return value === -2147483648 ? 'i32(-2147483647 - 1)' : `${value}i`;
      case 'u32':
        return `${value >>> 0}u`;
      case 'f32':
      case 'f16': {
        const f = t === 'f32' ? 'f' : 'h';
        // Bit patterns in private variables: a bitcast of a literal is a const-expression, and WGSL rejects NaN / inf
        // there ("value cannot be represented").
        if (Number.isNaN(value)) return this.special(t, 'kiln_nan', 0x7fc00000);
        if (value === Infinity) return this.special(t, 'kiln_inf', 0x7f800000);
        if (value === -Infinity) return this.special(t, 'kiln_ninf', 0xff800000);
        return `${floatText(value)}${f}`;
      }
    }
  }

  private special(t: KType, name: string, bits: number): string {
    this.helpers.add(`var<private> ${name}: u32 = ${bits >>> 0}u;\n`);
    return t === 'f32' ? `bitcast<f32>(${name})` : `${t}(bitcast<f32>(${name}))`;
  }

  declLet(name: string, t: KType, value: string): string {
    return `let ${name}: ${t} = ${value};`;
  }
  declVar(name: string, t: KType, value: string): string {
    return `var ${name}: ${t} = ${value};`;
  }
  forHeader(v: string, start: string, end: string, step: string): string {
    const t = this.locals.get(v) ?? 'i32';
    return `for (var ${v}: ${t} = ${start}; ${v} < ${end}; ${v} = ${v} + ${step})`;
  }
  builtin(e: Extract<Expr, { k: 'builtin' }>): string {
    const base = { local_id: 'lid', group_id: 'wid', num_groups: 'nwg' }[e.which];
    return `${base}.${'xyz'[e.dim]}`;
  }
  uniform(name: string): string {
    return `u.${name}`;
  }
  castExpr(to: KType, _from: KType, a: string): string {
    return `${to}(${a})`;
  }
  bitcastExpr(to: KType, _from: KType, a: string): string {
    return `bitcast<${to}>(${a})`;
  }
  selectExpr(cond: string, a: string, b: string): string {
    return `select(${b}, ${a}, ${cond})`;
  }
  barrier(): string {
    return 'workgroupBarrier();';
  }
  protected override shift(op: '<<' | '>>', a: string, b: string): string {
    return `(${a} ${op} u32(${b}))`; // WGSL shift amounts are u32
  }
  protected call2(fn: 'min' | 'max' | 'pow' | 'fmod', _t: KType, a: string, b: string): string {
    if (fn === 'fmod') return `(${a} % ${b})`; // WGSL % on floats truncates like C fmod
    return `${fn}(${a}, ${b})`;
  }
  unary(op: UnOp, t: KType, a: string): string {
    switch (op) {
      case 'neg':
        return `(-${a})`;
      case 'not':
        return `(!${a})`;
      case 'rsqrt':
        return `inverseSqrt(${a})`;
      case 'round_even':
        return `round(${a})`; // WGSL round() is round-half-to-even
      case 'erf':
      case 'erfc':
        this.helpers.add(ERFC_HELPER);
        return t === 'f32' ? `kiln_${op}(${a})` : `${t}(kiln_${op}(f32(${a})))`;
      case 'asin':
      case 'acos':
        this.helpers.add(ASIN_ACOS_HELPER);
        return t === 'f32' ? `kiln_${op}(${a})` : `${t}(kiln_${op}(f32(${a})))`;
      case 'tanh':
        this.helpers.add(TANH_HELPER);
        return t === 'f32' ? `kiln_tanh(${a})` : `${t}(kiln_tanh(f32(${a})))`;
      case 'isnan':
        // bit test: WGSL compilers may assume x == x
        return `((bitcast<u32>(f32(${a})) & 0x7fffffffu) > 0x7f800000u)`;
      case 'isinf':
        return `((bitcast<u32>(f32(${a})) & 0x7fffffffu) == 0x7f800000u)`;
      default:
        return `${op}(${a})`;
    }
  }
  shuffleXor(_t: KType, a: string, mask: number): string {
    return `subgroupShuffleXor(${a}, ${mask}u)`;
  }
  dot4(signed: boolean, a: string, b: string): string {
    return signed ? `dot4I8Packed(${a}, ${b})` : `i32(dot4U8Packed(${a}, ${b}))`;
  }

  module(k: Kernel, body: string): string {
    const usesF16 =
      k.buffers.some((b) => b.storage === 'f16') || k.shared.some((s) => s.type === 'f16') || /\bf16\b/.test(body);
    const usesSubgroups = /\bsubgroupShuffleXor\(/.test(body);
    const out: string[] = [];
    if (usesF16) out.push('enable f16;');
    if (usesSubgroups) out.push('enable subgroups;');
    // a language feature (navigator.gpu.wgslLanguageFeatures), not a device feature: `requires`, not `enable`
    if (/\bdot4[IU]8Packed\(/.test(body)) out.push('requires packed_4x8_integer_dot_product;');
    if (out.length) out.push('');
    k.buffers.forEach((b, i) => {
      const elem = b.storage === 'f32' || b.storage === 'f16' || b.storage === 'i32' ? b.storage : 'u32';
      out.push(`@group(0) @binding(${i}) var<storage, ${b.access}> ${b.name}: array<${elem}>;`);
    });
    if (k.uniforms.length) {
      out.push(`struct Params {\n${k.uniforms.map((u) => `  ${u.name}: ${u.type},`).join('\n')}\n}`);
      out.push(`@group(0) @binding(${k.buffers.length}) var<uniform> u: Params;`);
    }
    for (const s of k.shared) out.push(`var<workgroup> ${s.name}: array<${s.type}, ${s.size}>;`);
    out.push('');
    for (const h of this.helpers) out.push(h);
    const [x, y, z] = k.workgroup;
    out.push(`@compute @workgroup_size(${x}, ${y}, ${z})`);
    out.push(
      `fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {`,
    );
    out.push(body + '}');
    return out.join('\n') + '\n';
  }
}
