// k_transpose_fc54579b43
@group(0) @binding(0) var<storage, read> b0: array<f32>;
@group(0) @binding(1) var<storage, read_write> b1: array<f32>;
struct Params {
  n0: i32,
  od1: i32,
  od2: i32,
  od3: i32,
  st4: i32,
  st5: i32,
  st6: i32,
}
@group(0) @binding(2) var<uniform> u: Params;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let g_0: i32 = i32((wid.x + (wid.y * nwg.x)));
  let l_1: i32 = i32(lid.x);
  let t_2: i32 = ((g_0 * 256i) + l_1);
  if ((t_2 < u.n0)) {
    let o_3: i32 = (t_2 % u.od1);
    let q_4: i32 = (t_2 / u.od1);
    let o_5: i32 = (q_4 % u.od2);
    let q_6: i32 = (q_4 / u.od2);
    let o_7: i32 = (q_6 % u.od3);
    let q_8: i32 = (q_6 / u.od3);
    let a_9: i32 = ((((q_8 * u.st4) + (o_7 * u.st5)) + (o_5 * u.st6)) + o_3);
    b1[t_2] = b0[a_9];
  }
}
