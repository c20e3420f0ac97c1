// k_softmax_f95c3aa809
@group(0) @binding(0) var<storage, read> b0: array<f32>;
@group(0) @binding(1) var<storage, read_write> b1: array<f32>;
struct Params {
  ks0: i32,
  len1: i32,
  rows2: i32,
  units3: i32,
}
@group(0) @binding(2) var<uniform> u: Params;
var<workgroup> sh_sh0: array<f32, 128>;

var<private> kiln_ninf: u32 = 4286578688u;

@compute @workgroup_size(128, 1, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let g_0: i32 = i32((wid.x + (wid.y * nwg.x)));
  let l_1: i32 = i32(lid.x);
  if ((g_0 < u.units3)) {
    let off_2: i32 = (g_0 * u.ks0);
    var acc_3: f32 = bitcast<f32>(kiln_ninf);
    for (var j_4: i32 = l_1; j_4 < u.len1; j_4 = j_4 + 128i) {
      let at_5: i32 = (off_2 + j_4);
      let e_6: f32 = b0[at_5];
      let n_7: f32 = select(acc_3, e_6, ((e_6 > acc_3) || ((bitcast<u32>(f32(e_6)) & 0x7fffffffu) > 0x7f800000u)));
      acc_3 = n_7;
    }
    sh_sh0[l_1] = acc_3;
    workgroupBarrier();
    if ((l_1 < 64i)) {
      let x_8: f32 = sh_sh0[l_1];
      let y_9: f32 = sh_sh0[(l_1 + 64i)];
      let z_10: f32 = select(x_8, y_9, ((y_9 > x_8) || ((bitcast<u32>(f32(y_9)) & 0x7fffffffu) > 0x7f800000u)));
      sh_sh0[l_1] = z_10;
    }
    workgroupBarrier();
    if ((l_1 < 32i)) {
      let x_11: f32 = sh_sh0[l_1];
      let y_12: f32 = sh_sh0[(l_1 + 32i)];
      let z_13: f32 = select(x_11, y_12, ((y_12 > x_11) || ((bitcast<u32>(f32(y_12)) & 0x7fffffffu) > 0x7f800000u)));
      sh_sh0[l_1] = z_13;
    }
    workgroupBarrier();
    if ((l_1 < 16i)) {
      let x_14: f32 = sh_sh0[l_1];
      let y_15: f32 = sh_sh0[(l_1 + 16i)];
      let z_16: f32 = select(x_14, y_15, ((y_15 > x_14) || ((bitcast<u32>(f32(y_15)) & 0x7fffffffu) > 0x7f800000u)));
      sh_sh0[l_1] = z_16;
    }
    workgroupBarrier();
    if ((l_1 < 8i)) {
      let x_17: f32 = sh_sh0[l_1];
      let y_18: f32 = sh_sh0[(l_1 + 8i)];
      let z_19: f32 = select(x_17, y_18, ((y_18 > x_17) || ((bitcast<u32>(f32(y_18)) & 0x7fffffffu) > 0x7f800000u)));
      sh_sh0[l_1] = z_19;
    }
    workgroupBarrier();
    if ((l_1 < 4i)) {
      let x_20: f32 = sh_sh0[l_1];
      let y_21: f32 = sh_sh0[(l_1 + 4i)];
      let z_22: f32 = select(x_20, y_21, ((y_21 > x_20) || ((bitcast<u32>(f32(y_21)) & 0x7fffffffu) > 0x7f800000u)));
      sh_sh0[l_1] = z_22;
    }
    workgroupBarrier();
    if ((l_1 < 2i)) {
      let x_23: f32 = sh_sh0[l_1];
      let y_24: f32 = sh_sh0[(l_1 + 2i)];
      let z_25: f32 = select(x_23, y_24, ((y_24 > x_23) || ((bitcast<u32>(f32(y_24)) & 0x7fffffffu) > 0x7f800000u)));
      sh_sh0[l_1] = z_25;
    }
    workgroupBarrier();
    if ((l_1 < 1i)) {
      let x_26: f32 = sh_sh0[l_1];
      let y_27: f32 = sh_sh0[(l_1 + 1i)];
      let z_28: f32 = select(x_26, y_27, ((y_27 > x_26) || ((bitcast<u32>(f32(y_27)) & 0x7fffffffu) > 0x7f800000u)));
      sh_sh0[l_1] = z_28;
    }
    workgroupBarrier();
    let red_29: f32 = sh_sh0[0i];
    workgroupBarrier();
    var acc_30: f32 = 0.0f;
    for (var j_31: i32 = l_1; j_31 < u.len1; j_31 = j_31 + 128i) {
      let at_32: i32 = (off_2 + j_31);
      let e_33: f32 = exp((b0[at_32] - red_29));
      let n_34: f32 = (acc_30 + e_33);
      acc_30 = n_34;
    }
    sh_sh0[l_1] = acc_30;
    workgroupBarrier();
    if ((l_1 < 64i)) {
      let x_35: f32 = sh_sh0[l_1];
      let y_36: f32 = sh_sh0[(l_1 + 64i)];
      let z_37: f32 = (x_35 + y_36);
      sh_sh0[l_1] = z_37;
    }
    workgroupBarrier();
    if ((l_1 < 32i)) {
      let x_38: f32 = sh_sh0[l_1];
      let y_39: f32 = sh_sh0[(l_1 + 32i)];
      let z_40: f32 = (x_38 + y_39);
      sh_sh0[l_1] = z_40;
    }
    workgroupBarrier();
    if ((l_1 < 16i)) {
      let x_41: f32 = sh_sh0[l_1];
      let y_42: f32 = sh_sh0[(l_1 + 16i)];
      let z_43: f32 = (x_41 + y_42);
      sh_sh0[l_1] = z_43;
    }
    workgroupBarrier();
    if ((l_1 < 8i)) {
      let x_44: f32 = sh_sh0[l_1];
      let y_45: f32 = sh_sh0[(l_1 + 8i)];
      let z_46: f32 = (x_44 + y_45);
      sh_sh0[l_1] = z_46;
    }
    workgroupBarrier();
    if ((l_1 < 4i)) {
      let x_47: f32 = sh_sh0[l_1];
      let y_48: f32 = sh_sh0[(l_1 + 4i)];
      let z_49: f32 = (x_47 + y_48);
      sh_sh0[l_1] = z_49;
    }
    workgroupBarrier();
    if ((l_1 < 2i)) {
      let x_50: f32 = sh_sh0[l_1];
      let y_51: f32 = sh_sh0[(l_1 + 2i)];
      let z_52: f32 = (x_50 + y_51);
      sh_sh0[l_1] = z_52;
    }
    workgroupBarrier();
    if ((l_1 < 1i)) {
      let x_53: f32 = sh_sh0[l_1];
      let y_54: f32 = sh_sh0[(l_1 + 1i)];
      let z_55: f32 = (x_53 + y_54);
      sh_sh0[l_1] = z_55;
    }
    workgroupBarrier();
    let red_56: f32 = sh_sh0[0i];
    workgroupBarrier();
    for (var j_57: i32 = l_1; j_57 < u.len1; j_57 = j_57 + 128i) {
      let at_58: i32 = (off_2 + j_57);
      let z_59: f32 = (b0[at_58] - red_29);
      b1[at_58] = (exp(z_59) / red_56);
    }
  }
}
