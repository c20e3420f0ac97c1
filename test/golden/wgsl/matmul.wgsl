// k_matmul_tiled_d4d2e68f0a
@group(0) @binding(0) var<storage, read> b0: array<f32>;
@group(0) @binding(1) var<storage, read> b1: array<f32>;
@group(0) @binding(2) var<storage, read_write> b2: array<f32>;
struct Params {
  tilesN0: i32,
  tilesM1: i32,
  nb2: i32,
  dm03: i32,
  dn04: i32,
  dk05: i32,
  sabatch06: i32,
  kfa7: i32,
  sam08: i32,
  sbbatch09: i32,
  kfb10: i32,
  sbn011: i32,
  sak012: i32,
  sbk013: i32,
  sobatch014: i32,
  som015: i32,
  son016: i32,
}
@group(0) @binding(3) var<uniform> u: Params;
var<workgroup> sh_As0: array<f32, 512>;
var<workgroup> sh_Bs1: array<f32, 512>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let l_0: i32 = i32(lid.x);
  let tx_1: i32 = (l_0 % 8i);
  let ty_2: i32 = (l_0 / 8i);
  let g_3: i32 = i32((wid.x + (wid.y * nwg.x)));
  let tn_4: i32 = (g_3 % u.tilesN0);
  let rest_5: i32 = (g_3 / u.tilesN0);
  let tm_6: i32 = (rest_5 % u.tilesM1);
  let bi_7: i32 = (rest_5 / u.tilesM1);
  let live_8: bool = (bi_7 < u.nb2);
  let bi_9: i32 = select(0i, bi_7, live_8);
  let m0_10: i32 = (tm_6 * 64i);
  let n0_11: i32 = (tn_4 * 64i);
  let base_12: i32 = (bi_9 * u.sabatch06);
  let kf_13: bool = (u.kfa7 != 0i);
  let kk_14: i32 = (l_0 % 8i);
  let ks_15: i32 = (l_0 / 8i);
  let xx_16: i32 = (l_0 % 64i);
  let xs_17: i32 = (l_0 / 64i);
  let xx_18: i32 = select(xx_16, ks_15, kf_13);
  let kk_19: i32 = select(xs_17, kk_14, kf_13);
  let si_20: i32 = ((kk_19 * 64i) + xx_18);
  let xa_21: i32 = (m0_10 + xx_18);
  let xin_22: bool = (live_8 && (xa_21 < u.dm03));
  let xo_23: i32 = (base_12 + (xa_21 * u.sam08));
  let xx_24: i32 = select(xx_16, (ks_15 + 8i), kf_13);
  let kk_25: i32 = select((xs_17 + 1i), kk_14, kf_13);
  let si_26: i32 = ((kk_25 * 64i) + xx_24);
  let xa_27: i32 = (m0_10 + xx_24);
  let xin_28: bool = (live_8 && (xa_27 < u.dm03));
  let xo_29: i32 = (base_12 + (xa_27 * u.sam08));
  let xx_30: i32 = select(xx_16, (ks_15 + 16i), kf_13);
  let kk_31: i32 = select((xs_17 + 2i), kk_14, kf_13);
  let si_32: i32 = ((kk_31 * 64i) + xx_30);
  let xa_33: i32 = (m0_10 + xx_30);
  let xin_34: bool = (live_8 && (xa_33 < u.dm03));
  let xo_35: i32 = (base_12 + (xa_33 * u.sam08));
  let xx_36: i32 = select(xx_16, (ks_15 + 24i), kf_13);
  let kk_37: i32 = select((xs_17 + 3i), kk_14, kf_13);
  let si_38: i32 = ((kk_37 * 64i) + xx_36);
  let xa_39: i32 = (m0_10 + xx_36);
  let xin_40: bool = (live_8 && (xa_39 < u.dm03));
  let xo_41: i32 = (base_12 + (xa_39 * u.sam08));
  let xx_42: i32 = select(xx_16, (ks_15 + 32i), kf_13);
  let kk_43: i32 = select((xs_17 + 4i), kk_14, kf_13);
  let si_44: i32 = ((kk_43 * 64i) + xx_42);
  let xa_45: i32 = (m0_10 + xx_42);
  let xin_46: bool = (live_8 && (xa_45 < u.dm03));
  let xo_47: i32 = (base_12 + (xa_45 * u.sam08));
  let xx_48: i32 = select(xx_16, (ks_15 + 40i), kf_13);
  let kk_49: i32 = select((xs_17 + 5i), kk_14, kf_13);
  let si_50: i32 = ((kk_49 * 64i) + xx_48);
  let xa_51: i32 = (m0_10 + xx_48);
  let xin_52: bool = (live_8 && (xa_51 < u.dm03));
  let xo_53: i32 = (base_12 + (xa_51 * u.sam08));
  let xx_54: i32 = select(xx_16, (ks_15 + 48i), kf_13);
  let kk_55: i32 = select((xs_17 + 6i), kk_14, kf_13);
  let si_56: i32 = ((kk_55 * 64i) + xx_54);
  let xa_57: i32 = (m0_10 + xx_54);
  let xin_58: bool = (live_8 && (xa_57 < u.dm03));
  let xo_59: i32 = (base_12 + (xa_57 * u.sam08));
  let xx_60: i32 = select(xx_16, (ks_15 + 56i), kf_13);
  let kk_61: i32 = select((xs_17 + 7i), kk_14, kf_13);
  let si_62: i32 = ((kk_61 * 64i) + xx_60);
  let xa_63: i32 = (m0_10 + xx_60);
  let xin_64: bool = (live_8 && (xa_63 < u.dm03));
  let xo_65: i32 = (base_12 + (xa_63 * u.sam08));
  let base_66: i32 = (bi_9 * u.sbbatch09);
  let kf_67: bool = (u.kfb10 != 0i);
  let kk_68: i32 = (l_0 % 8i);
  let ks_69: i32 = (l_0 / 8i);
  let xx_70: i32 = (l_0 % 64i);
  let xs_71: i32 = (l_0 / 64i);
  let xx_72: i32 = select(xx_70, ks_69, kf_67);
  let kk_73: i32 = select(xs_71, kk_68, kf_67);
  let si_74: i32 = ((kk_73 * 64i) + xx_72);
  let xa_75: i32 = (n0_11 + xx_72);
  let xin_76: bool = (live_8 && (xa_75 < u.dn04));
  let xo_77: i32 = (base_66 + (xa_75 * u.sbn011));
  let xx_78: i32 = select(xx_70, (ks_69 + 8i), kf_67);
  let kk_79: i32 = select((xs_71 + 1i), kk_68, kf_67);
  let si_80: i32 = ((kk_79 * 64i) + xx_78);
  let xa_81: i32 = (n0_11 + xx_78);
  let xin_82: bool = (live_8 && (xa_81 < u.dn04));
  let xo_83: i32 = (base_66 + (xa_81 * u.sbn011));
  let xx_84: i32 = select(xx_70, (ks_69 + 16i), kf_67);
  let kk_85: i32 = select((xs_71 + 2i), kk_68, kf_67);
  let si_86: i32 = ((kk_85 * 64i) + xx_84);
  let xa_87: i32 = (n0_11 + xx_84);
  let xin_88: bool = (live_8 && (xa_87 < u.dn04));
  let xo_89: i32 = (base_66 + (xa_87 * u.sbn011));
  let xx_90: i32 = select(xx_70, (ks_69 + 24i), kf_67);
  let kk_91: i32 = select((xs_71 + 3i), kk_68, kf_67);
  let si_92: i32 = ((kk_91 * 64i) + xx_90);
  let xa_93: i32 = (n0_11 + xx_90);
  let xin_94: bool = (live_8 && (xa_93 < u.dn04));
  let xo_95: i32 = (base_66 + (xa_93 * u.sbn011));
  let xx_96: i32 = select(xx_70, (ks_69 + 32i), kf_67);
  let kk_97: i32 = select((xs_71 + 4i), kk_68, kf_67);
  let si_98: i32 = ((kk_97 * 64i) + xx_96);
  let xa_99: i32 = (n0_11 + xx_96);
  let xin_100: bool = (live_8 && (xa_99 < u.dn04));
  let xo_101: i32 = (base_66 + (xa_99 * u.sbn011));
  let xx_102: i32 = select(xx_70, (ks_69 + 40i), kf_67);
  let kk_103: i32 = select((xs_71 + 5i), kk_68, kf_67);
  let si_104: i32 = ((kk_103 * 64i) + xx_102);
  let xa_105: i32 = (n0_11 + xx_102);
  let xin_106: bool = (live_8 && (xa_105 < u.dn04));
  let xo_107: i32 = (base_66 + (xa_105 * u.sbn011));
  let xx_108: i32 = select(xx_70, (ks_69 + 48i), kf_67);
  let kk_109: i32 = select((xs_71 + 6i), kk_68, kf_67);
  let si_110: i32 = ((kk_109 * 64i) + xx_108);
  let xa_111: i32 = (n0_11 + xx_108);
  let xin_112: bool = (live_8 && (xa_111 < u.dn04));
  let xo_113: i32 = (base_66 + (xa_111 * u.sbn011));
  let xx_114: i32 = select(xx_70, (ks_69 + 56i), kf_67);
  let kk_115: i32 = select((xs_71 + 7i), kk_68, kf_67);
  let si_116: i32 = ((kk_115 * 64i) + xx_114);
  let xa_117: i32 = (n0_11 + xx_114);
  let xin_118: bool = (live_8 && (xa_117 < u.dn04));
  let xo_119: i32 = (base_66 + (xa_117 * u.sbn011));
  var acc0_0: f32 = 0.0f;
  var acc0_1: f32 = 0.0f;
  var acc0_2: f32 = 0.0f;
  var acc0_3: f32 = 0.0f;
  var acc0_4: f32 = 0.0f;
  var acc0_5: f32 = 0.0f;
  var acc0_6: f32 = 0.0f;
  var acc0_7: f32 = 0.0f;
  var acc1_0: f32 = 0.0f;
  var acc1_1: f32 = 0.0f;
  var acc1_2: f32 = 0.0f;
  var acc1_3: f32 = 0.0f;
  var acc1_4: f32 = 0.0f;
  var acc1_5: f32 = 0.0f;
  var acc1_6: f32 = 0.0f;
  var acc1_7: f32 = 0.0f;
  var acc2_0: f32 = 0.0f;
  var acc2_1: f32 = 0.0f;
  var acc2_2: f32 = 0.0f;
  var acc2_3: f32 = 0.0f;
  var acc2_4: f32 = 0.0f;
  var acc2_5: f32 = 0.0f;
  var acc2_6: f32 = 0.0f;
  var acc2_7: f32 = 0.0f;
  var acc3_0: f32 = 0.0f;
  var acc3_1: f32 = 0.0f;
  var acc3_2: f32 = 0.0f;
  var acc3_3: f32 = 0.0f;
  var acc3_4: f32 = 0.0f;
  var acc3_5: f32 = 0.0f;
  var acc3_6: f32 = 0.0f;
  var acc3_7: f32 = 0.0f;
  var acc4_0: f32 = 0.0f;
  var acc4_1: f32 = 0.0f;
  var acc4_2: f32 = 0.0f;
  var acc4_3: f32 = 0.0f;
  var acc4_4: f32 = 0.0f;
  var acc4_5: f32 = 0.0f;
  var acc4_6: f32 = 0.0f;
  var acc4_7: f32 = 0.0f;
  var acc5_0: f32 = 0.0f;
  var acc5_1: f32 = 0.0f;
  var acc5_2: f32 = 0.0f;
  var acc5_3: f32 = 0.0f;
  var acc5_4: f32 = 0.0f;
  var acc5_5: f32 = 0.0f;
  var acc5_6: f32 = 0.0f;
  var acc5_7: f32 = 0.0f;
  var acc6_0: f32 = 0.0f;
  var acc6_1: f32 = 0.0f;
  var acc6_2: f32 = 0.0f;
  var acc6_3: f32 = 0.0f;
  var acc6_4: f32 = 0.0f;
  var acc6_5: f32 = 0.0f;
  var acc6_6: f32 = 0.0f;
  var acc6_7: f32 = 0.0f;
  var acc7_0: f32 = 0.0f;
  var acc7_1: f32 = 0.0f;
  var acc7_2: f32 = 0.0f;
  var acc7_3: f32 = 0.0f;
  var acc7_4: f32 = 0.0f;
  var acc7_5: f32 = 0.0f;
  var acc7_6: f32 = 0.0f;
  var acc7_7: f32 = 0.0f;
  for (var k0: i32 = 0i; k0 < u.dk05; k0 = k0 + 8i) {
    let ka_120: i32 = (k0 + kk_19);
    let inb_121: bool = (xin_22 && (ka_120 < u.dk05));
    sh_As0[si_20] = select(0.0f, b0[select(0i, (xo_23 + (ka_120 * u.sak012)), inb_121)], inb_121);
    let ka_122: i32 = (k0 + kk_25);
    let inb_123: bool = (xin_28 && (ka_122 < u.dk05));
    sh_As0[si_26] = select(0.0f, b0[select(0i, (xo_29 + (ka_122 * u.sak012)), inb_123)], inb_123);
    let ka_124: i32 = (k0 + kk_31);
    let inb_125: bool = (xin_34 && (ka_124 < u.dk05));
    sh_As0[si_32] = select(0.0f, b0[select(0i, (xo_35 + (ka_124 * u.sak012)), inb_125)], inb_125);
    let ka_126: i32 = (k0 + kk_37);
    let inb_127: bool = (xin_40 && (ka_126 < u.dk05));
    sh_As0[si_38] = select(0.0f, b0[select(0i, (xo_41 + (ka_126 * u.sak012)), inb_127)], inb_127);
    let ka_128: i32 = (k0 + kk_43);
    let inb_129: bool = (xin_46 && (ka_128 < u.dk05));
    sh_As0[si_44] = select(0.0f, b0[select(0i, (xo_47 + (ka_128 * u.sak012)), inb_129)], inb_129);
    let ka_130: i32 = (k0 + kk_49);
    let inb_131: bool = (xin_52 && (ka_130 < u.dk05));
    sh_As0[si_50] = select(0.0f, b0[select(0i, (xo_53 + (ka_130 * u.sak012)), inb_131)], inb_131);
    let ka_132: i32 = (k0 + kk_55);
    let inb_133: bool = (xin_58 && (ka_132 < u.dk05));
    sh_As0[si_56] = select(0.0f, b0[select(0i, (xo_59 + (ka_132 * u.sak012)), inb_133)], inb_133);
    let ka_134: i32 = (k0 + kk_61);
    let inb_135: bool = (xin_64 && (ka_134 < u.dk05));
    sh_As0[si_62] = select(0.0f, b0[select(0i, (xo_65 + (ka_134 * u.sak012)), inb_135)], inb_135);
    let ka_136: i32 = (k0 + kk_73);
    let inb_137: bool = (xin_76 && (ka_136 < u.dk05));
    sh_Bs1[si_74] = select(0.0f, b1[select(0i, (xo_77 + (ka_136 * u.sbk013)), inb_137)], inb_137);
    let ka_138: i32 = (k0 + kk_79);
    let inb_139: bool = (xin_82 && (ka_138 < u.dk05));
    sh_Bs1[si_80] = select(0.0f, b1[select(0i, (xo_83 + (ka_138 * u.sbk013)), inb_139)], inb_139);
    let ka_140: i32 = (k0 + kk_85);
    let inb_141: bool = (xin_88 && (ka_140 < u.dk05));
    sh_Bs1[si_86] = select(0.0f, b1[select(0i, (xo_89 + (ka_140 * u.sbk013)), inb_141)], inb_141);
    let ka_142: i32 = (k0 + kk_91);
    let inb_143: bool = (xin_94 && (ka_142 < u.dk05));
    sh_Bs1[si_92] = select(0.0f, b1[select(0i, (xo_95 + (ka_142 * u.sbk013)), inb_143)], inb_143);
    let ka_144: i32 = (k0 + kk_97);
    let inb_145: bool = (xin_100 && (ka_144 < u.dk05));
    sh_Bs1[si_98] = select(0.0f, b1[select(0i, (xo_101 + (ka_144 * u.sbk013)), inb_145)], inb_145);
    let ka_146: i32 = (k0 + kk_103);
    let inb_147: bool = (xin_106 && (ka_146 < u.dk05));
    sh_Bs1[si_104] = select(0.0f, b1[select(0i, (xo_107 + (ka_146 * u.sbk013)), inb_147)], inb_147);
    let ka_148: i32 = (k0 + kk_109);
    let inb_149: bool = (xin_112 && (ka_148 < u.dk05));
    sh_Bs1[si_110] = select(0.0f, b1[select(0i, (xo_113 + (ka_148 * u.sbk013)), inb_149)], inb_149);
    let ka_150: i32 = (k0 + kk_115);
    let inb_151: bool = (xin_118 && (ka_150 < u.dk05));
    sh_Bs1[si_116] = select(0.0f, b1[select(0i, (xo_119 + (ka_150 * u.sbk013)), inb_151)], inb_151);
    workgroupBarrier();
    for (var kq: i32 = 0i; kq < 8i; kq = kq + 1i) {
      let ra_152: i32 = ((kq * 64i) + ty_2);
      let rb_153: i32 = ((kq * 64i) + tx_1);
      let a_154: f32 = sh_As0[ra_152];
      let a_155: f32 = sh_As0[(ra_152 + 8i)];
      let a_156: f32 = sh_As0[(ra_152 + 16i)];
      let a_157: f32 = sh_As0[(ra_152 + 24i)];
      let a_158: f32 = sh_As0[(ra_152 + 32i)];
      let a_159: f32 = sh_As0[(ra_152 + 40i)];
      let a_160: f32 = sh_As0[(ra_152 + 48i)];
      let a_161: f32 = sh_As0[(ra_152 + 56i)];
      let b_162: f32 = sh_Bs1[rb_153];
      let b_163: f32 = sh_Bs1[(rb_153 + 8i)];
      let b_164: f32 = sh_Bs1[(rb_153 + 16i)];
      let b_165: f32 = sh_Bs1[(rb_153 + 24i)];
      let b_166: f32 = sh_Bs1[(rb_153 + 32i)];
      let b_167: f32 = sh_Bs1[(rb_153 + 40i)];
      let b_168: f32 = sh_Bs1[(rb_153 + 48i)];
      let b_169: f32 = sh_Bs1[(rb_153 + 56i)];
      acc0_0 = (acc0_0 + (a_154 * b_162));
      acc0_1 = (acc0_1 + (a_154 * b_163));
      acc0_2 = (acc0_2 + (a_154 * b_164));
      acc0_3 = (acc0_3 + (a_154 * b_165));
      acc0_4 = (acc0_4 + (a_154 * b_166));
      acc0_5 = (acc0_5 + (a_154 * b_167));
      acc0_6 = (acc0_6 + (a_154 * b_168));
      acc0_7 = (acc0_7 + (a_154 * b_169));
      acc1_0 = (acc1_0 + (a_155 * b_162));
      acc1_1 = (acc1_1 + (a_155 * b_163));
      acc1_2 = (acc1_2 + (a_155 * b_164));
      acc1_3 = (acc1_3 + (a_155 * b_165));
      acc1_4 = (acc1_4 + (a_155 * b_166));
      acc1_5 = (acc1_5 + (a_155 * b_167));
      acc1_6 = (acc1_6 + (a_155 * b_168));
      acc1_7 = (acc1_7 + (a_155 * b_169));
      acc2_0 = (acc2_0 + (a_156 * b_162));
      acc2_1 = (acc2_1 + (a_156 * b_163));
      acc2_2 = (acc2_2 + (a_156 * b_164));
      acc2_3 = (acc2_3 + (a_156 * b_165));
      acc2_4 = (acc2_4 + (a_156 * b_166));
      acc2_5 = (acc2_5 + (a_156 * b_167));
      acc2_6 = (acc2_6 + (a_156 * b_168));
      acc2_7 = (acc2_7 + (a_156 * b_169));
      acc3_0 = (acc3_0 + (a_157 * b_162));
      acc3_1 = (acc3_1 + (a_157 * b_163));
      acc3_2 = (acc3_2 + (a_157 * b_164));
      acc3_3 = (acc3_3 + (a_157 * b_165));
      acc3_4 = (acc3_4 + (a_157 * b_166));
      acc3_5 = (acc3_5 + (a_157 * b_167));
      acc3_6 = (acc3_6 + (a_157 * b_168));
      acc3_7 = (acc3_7 + (a_157 * b_169));
      acc4_0 = (acc4_0 + (a_158 * b_162));
      acc4_1 = (acc4_1 + (a_158 * b_163));
      acc4_2 = (acc4_2 + (a_158 * b_164));
      acc4_3 = (acc4_3 + (a_158 * b_165));
      acc4_4 = (acc4_4 + (a_158 * b_166));
      acc4_5 = (acc4_5 + (a_158 * b_167));
      acc4_6 = (acc4_6 + (a_158 * b_168));
      acc4_7 = (acc4_7 + (a_158 * b_169));
      acc5_0 = (acc5_0 + (a_159 * b_162));
      acc5_1 = (acc5_1 + (a_159 * b_163));
      acc5_2 = (acc5_2 + (a_159 * b_164));
      acc5_3 = (acc5_3 + (a_159 * b_165));
      acc5_4 = (acc5_4 + (a_159 * b_166));
      acc5_5 = (acc5_5 + (a_159 * b_167));
      acc5_6 = (acc5_6 + (a_159 * b_168));
      acc5_7 = (acc5_7 + (a_159 * b_169));
      acc6_0 = (acc6_0 + (a_160 * b_162));
      acc6_1 = (acc6_1 + (a_160 * b_163));
      acc6_2 = (acc6_2 + (a_160 * b_164));
      acc6_3 = (acc6_3 + (a_160 * b_165));
      acc6_4 = (acc6_4 + (a_160 * b_166));
      acc6_5 = (acc6_5 + (a_160 * b_167));
      acc6_6 = (acc6_6 + (a_160 * b_168));
      acc6_7 = (acc6_7 + (a_160 * b_169));
      acc7_0 = (acc7_0 + (a_161 * b_162));
      acc7_1 = (acc7_1 + (a_161 * b_163));
      acc7_2 = (acc7_2 + (a_161 * b_164));
      acc7_3 = (acc7_3 + (a_161 * b_165));
      acc7_4 = (acc7_4 + (a_161 * b_166));
      acc7_5 = (acc7_5 + (a_161 * b_167));
      acc7_6 = (acc7_6 + (a_161 * b_168));
      acc7_7 = (acc7_7 + (a_161 * b_169));
    }
    workgroupBarrier();
  }
  let base_170: i32 = (bi_9 * u.sobatch014);
  let mi_171: i32 = (m0_10 + ty_2);
  let min_172: bool = (live_8 && (mi_171 < u.dm03));
  let mo_173: i32 = (base_170 + (mi_171 * u.som015));
  let mi_174: i32 = (m0_10 + (ty_2 + 8i));
  let min_175: bool = (live_8 && (mi_174 < u.dm03));
  let mo_176: i32 = (base_170 + (mi_174 * u.som015));
  let mi_177: i32 = (m0_10 + (ty_2 + 16i));
  let min_178: bool = (live_8 && (mi_177 < u.dm03));
  let mo_179: i32 = (base_170 + (mi_177 * u.som015));
  let mi_180: i32 = (m0_10 + (ty_2 + 24i));
  let min_181: bool = (live_8 && (mi_180 < u.dm03));
  let mo_182: i32 = (base_170 + (mi_180 * u.som015));
  let mi_183: i32 = (m0_10 + (ty_2 + 32i));
  let min_184: bool = (live_8 && (mi_183 < u.dm03));
  let mo_185: i32 = (base_170 + (mi_183 * u.som015));
  let mi_186: i32 = (m0_10 + (ty_2 + 40i));
  let min_187: bool = (live_8 && (mi_186 < u.dm03));
  let mo_188: i32 = (base_170 + (mi_186 * u.som015));
  let mi_189: i32 = (m0_10 + (ty_2 + 48i));
  let min_190: bool = (live_8 && (mi_189 < u.dm03));
  let mo_191: i32 = (base_170 + (mi_189 * u.som015));
  let mi_192: i32 = (m0_10 + (ty_2 + 56i));
  let min_193: bool = (live_8 && (mi_192 < u.dm03));
  let mo_194: i32 = (base_170 + (mi_192 * u.som015));
  let nj_195: i32 = (n0_11 + tx_1);
  let nin_196: bool = (nj_195 < u.dn04);
  let no_197: i32 = (nj_195 * u.son016);
  let nj_198: i32 = (n0_11 + (tx_1 + 8i));
  let nin_199: bool = (nj_198 < u.dn04);
  let no_200: i32 = (nj_198 * u.son016);
  let nj_201: i32 = (n0_11 + (tx_1 + 16i));
  let nin_202: bool = (nj_201 < u.dn04);
  let no_203: i32 = (nj_201 * u.son016);
  let nj_204: i32 = (n0_11 + (tx_1 + 24i));
  let nin_205: bool = (nj_204 < u.dn04);
  let no_206: i32 = (nj_204 * u.son016);
  let nj_207: i32 = (n0_11 + (tx_1 + 32i));
  let nin_208: bool = (nj_207 < u.dn04);
  let no_209: i32 = (nj_207 * u.son016);
  let nj_210: i32 = (n0_11 + (tx_1 + 40i));
  let nin_211: bool = (nj_210 < u.dn04);
  let no_212: i32 = (nj_210 * u.son016);
  let nj_213: i32 = (n0_11 + (tx_1 + 48i));
  let nin_214: bool = (nj_213 < u.dn04);
  let no_215: i32 = (nj_213 * u.son016);
  let nj_216: i32 = (n0_11 + (tx_1 + 56i));
  let nin_217: bool = (nj_216 < u.dn04);
  let no_218: i32 = (nj_216 * u.son016);
  if ((min_172 && nin_196)) {
    b2[(mo_173 + no_197)] = acc0_0;
  }
  if ((min_172 && nin_199)) {
    b2[(mo_173 + no_200)] = acc0_1;
  }
  if ((min_172 && nin_202)) {
    b2[(mo_173 + no_203)] = acc0_2;
  }
  if ((min_172 && nin_205)) {
    b2[(mo_173 + no_206)] = acc0_3;
  }
  if ((min_172 && nin_208)) {
    b2[(mo_173 + no_209)] = acc0_4;
  }
  if ((min_172 && nin_211)) {
    b2[(mo_173 + no_212)] = acc0_5;
  }
  if ((min_172 && nin_214)) {
    b2[(mo_173 + no_215)] = acc0_6;
  }
  if ((min_172 && nin_217)) {
    b2[(mo_173 + no_218)] = acc0_7;
  }
  if ((min_175 && nin_196)) {
    b2[(mo_176 + no_197)] = acc1_0;
  }
  if ((min_175 && nin_199)) {
    b2[(mo_176 + no_200)] = acc1_1;
  }
  if ((min_175 && nin_202)) {
    b2[(mo_176 + no_203)] = acc1_2;
  }
  if ((min_175 && nin_205)) {
    b2[(mo_176 + no_206)] = acc1_3;
  }
  if ((min_175 && nin_208)) {
    b2[(mo_176 + no_209)] = acc1_4;
  }
  if ((min_175 && nin_211)) {
    b2[(mo_176 + no_212)] = acc1_5;
  }
  if ((min_175 && nin_214)) {
    b2[(mo_176 + no_215)] = acc1_6;
  }
  if ((min_175 && nin_217)) {
    b2[(mo_176 + no_218)] = acc1_7;
  }
  if ((min_178 && nin_196)) {
    b2[(mo_179 + no_197)] = acc2_0;
  }
  if ((min_178 && nin_199)) {
    b2[(mo_179 + no_200)] = acc2_1;
  }
  if ((min_178 && nin_202)) {
    b2[(mo_179 + no_203)] = acc2_2;
  }
  if ((min_178 && nin_205)) {
    b2[(mo_179 + no_206)] = acc2_3;
  }
  if ((min_178 && nin_208)) {
    b2[(mo_179 + no_209)] = acc2_4;
  }
  if ((min_178 && nin_211)) {
    b2[(mo_179 + no_212)] = acc2_5;
  }
  if ((min_178 && nin_214)) {
    b2[(mo_179 + no_215)] = acc2_6;
  }
  if ((min_178 && nin_217)) {
    b2[(mo_179 + no_218)] = acc2_7;
  }
  if ((min_181 && nin_196)) {
    b2[(mo_182 + no_197)] = acc3_0;
  }
  if ((min_181 && nin_199)) {
    b2[(mo_182 + no_200)] = acc3_1;
  }
  if ((min_181 && nin_202)) {
    b2[(mo_182 + no_203)] = acc3_2;
  }
  if ((min_181 && nin_205)) {
    b2[(mo_182 + no_206)] = acc3_3;
  }
  if ((min_181 && nin_208)) {
    b2[(mo_182 + no_209)] = acc3_4;
  }
  if ((min_181 && nin_211)) {
    b2[(mo_182 + no_212)] = acc3_5;
  }
  if ((min_181 && nin_214)) {
    b2[(mo_182 + no_215)] = acc3_6;
  }
  if ((min_181 && nin_217)) {
    b2[(mo_182 + no_218)] = acc3_7;
  }
  if ((min_184 && nin_196)) {
    b2[(mo_185 + no_197)] = acc4_0;
  }
  if ((min_184 && nin_199)) {
    b2[(mo_185 + no_200)] = acc4_1;
  }
  if ((min_184 && nin_202)) {
    b2[(mo_185 + no_203)] = acc4_2;
  }
  if ((min_184 && nin_205)) {
    b2[(mo_185 + no_206)] = acc4_3;
  }
  if ((min_184 && nin_208)) {
    b2[(mo_185 + no_209)] = acc4_4;
  }
  if ((min_184 && nin_211)) {
    b2[(mo_185 + no_212)] = acc4_5;
  }
  if ((min_184 && nin_214)) {
    b2[(mo_185 + no_215)] = acc4_6;
  }
  if ((min_184 && nin_217)) {
    b2[(mo_185 + no_218)] = acc4_7;
  }
  if ((min_187 && nin_196)) {
    b2[(mo_188 + no_197)] = acc5_0;
  }
  if ((min_187 && nin_199)) {
    b2[(mo_188 + no_200)] = acc5_1;
  }
  if ((min_187 && nin_202)) {
    b2[(mo_188 + no_203)] = acc5_2;
  }
  if ((min_187 && nin_205)) {
    b2[(mo_188 + no_206)] = acc5_3;
  }
  if ((min_187 && nin_208)) {
    b2[(mo_188 + no_209)] = acc5_4;
  }
  if ((min_187 && nin_211)) {
    b2[(mo_188 + no_212)] = acc5_5;
  }
  if ((min_187 && nin_214)) {
    b2[(mo_188 + no_215)] = acc5_6;
  }
  if ((min_187 && nin_217)) {
    b2[(mo_188 + no_218)] = acc5_7;
  }
  if ((min_190 && nin_196)) {
    b2[(mo_191 + no_197)] = acc6_0;
  }
  if ((min_190 && nin_199)) {
    b2[(mo_191 + no_200)] = acc6_1;
  }
  if ((min_190 && nin_202)) {
    b2[(mo_191 + no_203)] = acc6_2;
  }
  if ((min_190 && nin_205)) {
    b2[(mo_191 + no_206)] = acc6_3;
  }
  if ((min_190 && nin_208)) {
    b2[(mo_191 + no_209)] = acc6_4;
  }
  if ((min_190 && nin_211)) {
    b2[(mo_191 + no_212)] = acc6_5;
  }
  if ((min_190 && nin_214)) {
    b2[(mo_191 + no_215)] = acc6_6;
  }
  if ((min_190 && nin_217)) {
    b2[(mo_191 + no_218)] = acc6_7;
  }
  if ((min_193 && nin_196)) {
    b2[(mo_194 + no_197)] = acc7_0;
  }
  if ((min_193 && nin_199)) {
    b2[(mo_194 + no_200)] = acc7_1;
  }
  if ((min_193 && nin_202)) {
    b2[(mo_194 + no_203)] = acc7_2;
  }
  if ((min_193 && nin_205)) {
    b2[(mo_194 + no_206)] = acc7_3;
  }
  if ((min_193 && nin_208)) {
    b2[(mo_194 + no_209)] = acc7_4;
  }
  if ((min_193 && nin_211)) {
    b2[(mo_194 + no_212)] = acc7_5;
  }
  if ((min_193 && nin_214)) {
    b2[(mo_194 + no_215)] = acc7_6;
  }
  if ((min_193 && nin_217)) {
    b2[(mo_194 + no_218)] = acc7_7;
  }
}
