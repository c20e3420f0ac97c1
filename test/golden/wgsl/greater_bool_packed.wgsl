// k_greater_90cc2896bf
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
  let g0: i32 = i32((wid.x + (wid.y * nwg.x)));
  let l1: i32 = i32(lid.x);
  let t2: i32 = ((g0 * 256i) + l1);
  if ((t2 < u.w1)) {
    let e3: i32 = (t2 * 4i);
    let ec4: i32 = select(0i, e3, (e3 < u.n0));
    let o5: i32 = (ec4 % u.od2);
    let q6: i32 = (ec4 / u.od2);
    let v7: i32 = select(0i, 1i, (b0[ec4] > b1[q6]));
    let e8: i32 = ((t2 * 4i) + 1i);
    let ec9: i32 = select(0i, e8, (e8 < u.n0));
    let o10: i32 = (ec9 % u.od2);
    let q11: i32 = (ec9 / u.od2);
    let v12: i32 = select(0i, 1i, (b0[ec9] > b1[q11]));
    let e13: i32 = ((t2 * 4i) + 2i);
    let ec14: i32 = select(0i, e13, (e13 < u.n0));
    let o15: i32 = (ec14 % u.od2);
    let q16: i32 = (ec14 / u.od2);
    let v17: i32 = select(0i, 1i, (b0[ec14] > b1[q16]));
    let e18: i32 = ((t2 * 4i) + 3i);
    let ec19: i32 = select(0i, e18, (e18 < u.n0));
    let o20: i32 = (ec19 % u.od2);
    let q21: i32 = (ec19 / u.od2);
    let v22: i32 = select(0i, 1i, (b0[ec19] > b1[q21]));
    b2[t2] = ((((0u | (bitcast<u32>(v7) & 255u)) | ((bitcast<u32>(v12) & 255u) << u32(8u))) | ((bitcast<u32>(v17) & 255u) << u32(16u))) | ((bitcast<u32>(v22) & 255u) << u32(24u)));
  }
}
