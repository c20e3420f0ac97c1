// k_layer_norm_93c0e85da9
@group(0) @binding(0) var<storage, read> b0: array<f32>;
@group(0) @binding(1) var<storage, read> b1: array<f32>;
@group(0) @binding(2) var<storage, read> b2: array<f32>;
@group(0) @binding(3) var<storage, read_write> b3: array<f32>;
struct Params {
  ks0: i32,
  len1: i32,
  rows2: i32,
  units3: i32,
}
@group(0) @binding(4) var<uniform> u: Params;
var<workgroup> sh_sh0: array<f32, 64>;

var<private> kiln_nan: u32 = 2143289344u;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let g_0: i32 = i32((wid.x + (wid.y * nwg.x)));
  let l_1: i32 = i32(lid.x);
  if ((g_0 < u.units3)) {
    let off_2: i32 = (g_0 * u.ks0);
    let n_3: f32 = f32(u.len1);
    var acc_4: f32 = 0.0f;
    for (var j_5: i32 = l_1; j_5 < u.len1; j_5 = j_5 + 64i) {
      let at_6: i32 = (off_2 + j_5);
      let e_7: f32 = b0[at_6];
      let n_8: f32 = (acc_4 + e_7);
      acc_4 = n_8;
    }
    sh_sh0[l_1] = acc_4;
    workgroupBarrier();
    if ((l_1 < 32i)) {
      let x_9: f32 = sh_sh0[l_1];
      let y_10: f32 = sh_sh0[(l_1 + 32i)];
      let z_11: f32 = (x_9 + y_10);
      sh_sh0[l_1] = z_11;
    }
    workgroupBarrier();
    if ((l_1 < 16i)) {
      let x_12: f32 = sh_sh0[l_1];
      let y_13: f32 = sh_sh0[(l_1 + 16i)];
      let z_14: f32 = (x_12 + y_13);
      sh_sh0[l_1] = z_14;
    }
    workgroupBarrier();
    if ((l_1 < 8i)) {
      let x_15: f32 = sh_sh0[l_1];
      let y_16: f32 = sh_sh0[(l_1 + 8i)];
      let z_17: f32 = (x_15 + y_16);
      sh_sh0[l_1] = z_17;
    }
    workgroupBarrier();
    if ((l_1 < 4i)) {
      let x_18: f32 = sh_sh0[l_1];
      let y_19: f32 = sh_sh0[(l_1 + 4i)];
      let z_20: f32 = (x_18 + y_19);
      sh_sh0[l_1] = z_20;
    }
    workgroupBarrier();
    if ((l_1 < 2i)) {
      let x_21: f32 = sh_sh0[l_1];
      let y_22: f32 = sh_sh0[(l_1 + 2i)];
      let z_23: f32 = (x_21 + y_22);
      sh_sh0[l_1] = z_23;
    }
    workgroupBarrier();
    if ((l_1 < 1i)) {
      let x_24: f32 = sh_sh0[l_1];
      let y_25: f32 = sh_sh0[(l_1 + 1i)];
      let z_26: f32 = (x_24 + y_25);
      sh_sh0[l_1] = z_26;
    }
    workgroupBarrier();
    let red_27: f32 = sh_sh0[0i];
    workgroupBarrier();
    let mean_28: f32 = select((red_27 / n_3), bitcast<f32>(kiln_nan), (u.len1 == 0i));
    var acc_29: f32 = 0.0f;
    for (var j_30: i32 = l_1; j_30 < u.len1; j_30 = j_30 + 64i) {
      let at_31: i32 = (off_2 + j_30);
      let d_32: f32 = (b0[at_31] - mean_28);
      let e_33: f32 = (d_32 * d_32);
      let n_34: f32 = (acc_29 + e_33);
      acc_29 = n_34;
    }
    sh_sh0[l_1] = acc_29;
    workgroupBarrier();
    if ((l_1 < 32i)) {
      let x_35: f32 = sh_sh0[l_1];
      let y_36: f32 = sh_sh0[(l_1 + 32i)];
      let z_37: f32 = (x_35 + y_36);
      sh_sh0[l_1] = z_37;
    }
    workgroupBarrier();
    if ((l_1 < 16i)) {
      let x_38: f32 = sh_sh0[l_1];
      let y_39: f32 = sh_sh0[(l_1 + 16i)];
      let z_40: f32 = (x_38 + y_39);
      sh_sh0[l_1] = z_40;
    }
    workgroupBarrier();
    if ((l_1 < 8i)) {
      let x_41: f32 = sh_sh0[l_1];
      let y_42: f32 = sh_sh0[(l_1 + 8i)];
      let z_43: f32 = (x_41 + y_42);
      sh_sh0[l_1] = z_43;
    }
    workgroupBarrier();
    if ((l_1 < 4i)) {
      let x_44: f32 = sh_sh0[l_1];
      let y_45: f32 = sh_sh0[(l_1 + 4i)];
      let z_46: f32 = (x_44 + y_45);
      sh_sh0[l_1] = z_46;
    }
    workgroupBarrier();
    if ((l_1 < 2i)) {
      let x_47: f32 = sh_sh0[l_1];
      let y_48: f32 = sh_sh0[(l_1 + 2i)];
      let z_49: f32 = (x_47 + y_48);
      sh_sh0[l_1] = z_49;
    }
    workgroupBarrier();
    if ((l_1 < 1i)) {
      let x_50: f32 = sh_sh0[l_1];
      let y_51: f32 = sh_sh0[(l_1 + 1i)];
      let z_52: f32 = (x_50 + y_51);
      sh_sh0[l_1] = z_52;
    }
    workgroupBarrier();
    let red_53: f32 = sh_sh0[0i];
    workgroupBarrier();
    let inv_54: f32 = (1.0f / sqrt((select((red_53 / n_3), bitcast<f32>(kiln_nan), (u.len1 == 0i)) + 0.00001f)));
    for (var j_55: i32 = l_1; j_55 < u.len1; j_55 = j_55 + 64i) {
      let at_56: i32 = (off_2 + j_55);
      b3[at_56] = ((((b0[at_56] - mean_28) * inv_54) * b1[j_55]) + b2[j_55]);
    }
  }
}
