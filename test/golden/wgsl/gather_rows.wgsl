// k_gather_20f510e265
@group(0) @binding(0) var<storage, read> b0: array<f32>;
@group(0) @binding(1) var<storage, read> b1: array<i32>;
@group(0) @binding(2) var<storage, read_write> b2: array<f32>;
@group(0) @binding(3) var<storage, read_write> b3: array<u32>;
struct Params {
  n0: i32,
  od1: i32,
  od2: i32,
  d3: i32,
  eslot4: u32,
  in5: i32,
}
@group(0) @binding(4) var<uniform> u: Params;

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
    let ir_7: i32 = b1[o_5];
    let iw_8: i32 = select(ir_7, (ir_7 + u.d3), (ir_7 < 0i));
    if (((iw_8 < 0i) || (iw_8 >= u.d3))) {
      b3[0i] = (u.eslot4 + 1u);
    }
    let ix_9: i32 = max(min(iw_8, (u.d3 - 1i)), 0i);
    let a_10: i32 = ((((q_6 * u.d3) + ix_9) * u.in5) + o_3);
    b2[t_2] = b0[a_10];
  }
}
