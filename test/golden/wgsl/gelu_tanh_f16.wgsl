// k_gelu_39092b597b
enable f16;

@group(0) @binding(0) var<storage, read> b0: array<f16>;
@group(0) @binding(1) var<storage, read_write> b1: array<f16>;
struct Params {
  n0: i32,
}
@group(0) @binding(2) var<uniform> u: Params;

fn kiln_tanh(x: f32) -> f32 {
  // tanh via exp of a clamped argument: some drivers return NaN from tanh() for |x| > ~88. NaN is tested by its bits
  // (clamp of NaN is implementation-defined and would turn it into a number).
  if ((bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u) { return x; }
  let e = exp(-2.0 * clamp(abs(x), 0.0, 40.0));
  let y = (1.0 - e) / (1.0 + e);
  return select(-y, y, x >= 0.0);
}

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let g_0: i32 = i32((wid.x + (wid.y * nwg.x)));
  let l_1: i32 = i32(lid.x);
  let t_2: i32 = ((g_0 * 256i) + l_1);
  if ((t_2 < u.n0)) {
    b1[t_2] = f16(((0.5f * f32(b0[t_2])) * (1.0f + kiln_tanh((0.7978846f * (f32(b0[t_2]) + (0.044715f * (f32(b0[t_2]) * (f32(b0[t_2]) * f32(b0[t_2]))))))))));
  }
}
