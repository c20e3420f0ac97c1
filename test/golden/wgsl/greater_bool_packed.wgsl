// k_greater_c481432d45
@group(0) @binding(0) var<storage, read> b0: array<f32>;
@group(0) @binding(1) var<storage, read> b1: array<f32>;
@group(0) @binding(2) var<storage, read_write> b2: array<u32>;
struct Params {
  n0: i32,
  w1: i32,
  od2: i32,
}
@group(0) @binding(3) var<uniform> u: Params;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let g_0: i32 = i32((wid.x + (wid.y * nwg.x)));
  let l_1: i32 = i32(lid.x);
  let t_2: i32 = ((g_0 * 256i) + l_1);
  if ((t_2 < u.w1)) {
    let e_3: i32 = (t_2 * 4i);
    let ec_4: i32 = select(0i, e_3, (e_3 < u.n0));
    let o_5: i32 = (ec_4 % u.od2);
    let q_6: i32 = (ec_4 / u.od2);
    let v_7: i32 = select(0i, 1i, (b0[ec_4] > b1[q_6]));
    let e_8: i32 = ((t_2 * 4i) + 1i);
    let ec_9: i32 = select(0i, e_8, (e_8 < u.n0));
    let o_10: i32 = (ec_9 % u.od2);
    let q_11: i32 = (ec_9 / u.od2);
    let v_12: i32 = select(0i, 1i, (b0[ec_9] > b1[q_11]));
    let e_13: i32 = ((t_2 * 4i) + 2i);
    let ec_14: i32 = select(0i, e_13, (e_13 < u.n0));
    let o_15: i32 = (ec_14 % u.od2);
    let q_16: i32 = (ec_14 / u.od2);
    let v_17: i32 = select(0i, 1i, (b0[ec_14] > b1[q_16]));
    let e_18: i32 = ((t_2 * 4i) + 3i);
    let ec_19: i32 = select(0i, e_18, (e_18 < u.n0));
    let o_20: i32 = (ec_19 % u.od2);
    let q_21: i32 = (ec_19 / u.od2);
    let v_22: i32 = select(0i, 1i, (b0[ec_19] > b1[q_21]));
    b2[t_2] = ((((0u | (bitcast<u32>(v_7) & 255u)) | ((bitcast<u32>(v_12) & 255u) << u32(8u))) | ((bitcast<u32>(v_17) & 255u) << u32(16u))) | ((bitcast<u32>(v_22) & 255u) << u32(24u)));
  }
}
