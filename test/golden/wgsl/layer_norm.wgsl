// k_layer_norm_3fb5900bce
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
    let k_4: f32 = b0[off_2];
    var acc_5: f32 = 0.0f;
    for (var j_6: i32 = l_1; j_6 < u.len1; j_6 = j_6 + 64i) {
      let at_7: i32 = (off_2 + j_6);
      let e_8: f32 = (b0[at_7] - k_4);
      let n_9: f32 = (acc_5 + e_8);
      acc_5 = n_9;
    }
    sh_sh0[l_1] = acc_5;
    workgroupBarrier();
    if ((l_1 < 32i)) {
      let x_10: f32 = sh_sh0[l_1];
      let y_11: f32 = sh_sh0[(l_1 + 32i)];
      let z_12: f32 = (x_10 + y_11);
      sh_sh0[l_1] = z_12;
    }
    workgroupBarrier();
    if ((l_1 < 16i)) {
      let x_13: f32 = sh_sh0[l_1];
      let y_14: f32 = sh_sh0[(l_1 + 16i)];
      let z_15: f32 = (x_13 + y_14);
      sh_sh0[l_1] = z_15;
    }
    workgroupBarrier();
    if ((l_1 < 8i)) {
      let x_16: f32 = sh_sh0[l_1];
      let y_17: f32 = sh_sh0[(l_1 + 8i)];
      let z_18: f32 = (x_16 + y_17);
      sh_sh0[l_1] = z_18;
    }
    workgroupBarrier();
    if ((l_1 < 4i)) {
      let x_19: f32 = sh_sh0[l_1];
      let y_20: f32 = sh_sh0[(l_1 + 4i)];
      let z_21: f32 = (x_19 + y_20);
      sh_sh0[l_1] = z_21;
    }
    workgroupBarrier();
    if ((l_1 < 2i)) {
      let x_22: f32 = sh_sh0[l_1];
      let y_23: f32 = sh_sh0[(l_1 + 2i)];
      let z_24: f32 = (x_22 + y_23);
      sh_sh0[l_1] = z_24;
    }
    workgroupBarrier();
    if ((l_1 < 1i)) {
      let x_25: f32 = sh_sh0[l_1];
      let y_26: f32 = sh_sh0[(l_1 + 1i)];
      let z_27: f32 = (x_25 + y_26);
      sh_sh0[l_1] = z_27;
    }
    workgroupBarrier();
    let red_28: f32 = sh_sh0[0i];
    workgroupBarrier();
    let dmean_29: f32 = select((red_28 / n_3), bitcast<f32>(kiln_nan), (u.len1 == 0i));
    let mean_30: f32 = (k_4 + dmean_29);
    var acc_31: f32 = 0.0f;
    for (var j_32: i32 = l_1; j_32 < u.len1; j_32 = j_32 + 64i) {
      let at_33: i32 = (off_2 + j_32);
      let d_34: f32 = ((b0[at_33] - k_4) - dmean_29);
      let e_35: f32 = (d_34 * d_34);
      let n_36: f32 = (acc_31 + e_35);
      acc_31 = n_36;
    }
    sh_sh0[l_1] = acc_31;
    workgroupBarrier();
    if ((l_1 < 32i)) {
      let x_37: f32 = sh_sh0[l_1];
      let y_38: f32 = sh_sh0[(l_1 + 32i)];
      let z_39: f32 = (x_37 + y_38);
      sh_sh0[l_1] = z_39;
    }
    workgroupBarrier();
    if ((l_1 < 16i)) {
      let x_40: f32 = sh_sh0[l_1];
      let y_41: f32 = sh_sh0[(l_1 + 16i)];
      let z_42: f32 = (x_40 + y_41);
      sh_sh0[l_1] = z_42;
    }
    workgroupBarrier();
    if ((l_1 < 8i)) {
      let x_43: f32 = sh_sh0[l_1];
      let y_44: f32 = sh_sh0[(l_1 + 8i)];
      let z_45: f32 = (x_43 + y_44);
      sh_sh0[l_1] = z_45;
    }
    workgroupBarrier();
    if ((l_1 < 4i)) {
      let x_46: f32 = sh_sh0[l_1];
      let y_47: f32 = sh_sh0[(l_1 + 4i)];
      let z_48: f32 = (x_46 + y_47);
      sh_sh0[l_1] = z_48;
    }
    workgroupBarrier();
    if ((l_1 < 2i)) {
      let x_49: f32 = sh_sh0[l_1];
      let y_50: f32 = sh_sh0[(l_1 + 2i)];
      let z_51: f32 = (x_49 + y_50);
      sh_sh0[l_1] = z_51;
    }
    workgroupBarrier();
    if ((l_1 < 1i)) {
      let x_52: f32 = sh_sh0[l_1];
      let y_53: f32 = sh_sh0[(l_1 + 1i)];
      let z_54: f32 = (x_52 + y_53);
      sh_sh0[l_1] = z_54;
    }
    workgroupBarrier();
    let red_55: f32 = sh_sh0[0i];
    workgroupBarrier();
    let inv_56: f32 = (1.0f / sqrt((select((red_55 / n_3), bitcast<f32>(kiln_nan), (u.len1 == 0i)) + 0.00001f)));
    for (var j_57: i32 = l_1; j_57 < u.len1; j_57 = j_57 + 64i) {
      let at_58: i32 = (off_2 + j_57);
      b3[at_58] = (((((b0[at_58] - k_4) - dmean_29) * inv_56) * b1[j_57]) + b2[j_57]);
    }
  }
}
