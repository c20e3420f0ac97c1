// k_add_54d3434ca2
@group(0) @binding(0) var<storage, read> b0: array<f32>;
@group(0) @binding(1) var<storage, read> b1: array<f32>;
@group(0) @binding(2) var<storage, read_write> b2: array<f32>;
struct Params {
  n0: i32,
  od1: i32,
}
@group(0) @binding(3) var<uniform> u: Params;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let g0: i32 = i32((wid.x + (wid.y * nwg.x)));
  let l1: i32 = i32(lid.x);
  let t2: i32 = ((g0 * 256i) + l1);
  if ((t2 < u.n0)) {
    let o3: i32 = (t2 % u.od1);
    let q4: i32 = (t2 / u.od1);
    b2[t2] = (b0[t2] + b1[o3]);
  }
}
