// k_matmul_tiled_d4d2e68f0a
#ifndef KILN_HELPER_aae47ef0789c91d5
#define KILN_HELPER_aae47ef0789c91d5
__device__ __forceinline__ int kiln_mod_i32(int a, int b) { return (b == 0 || b == -1) ? 0 : a % b; }
#endif
#ifndef KILN_HELPER_6a680e885eafdba6
#define KILN_HELPER_6a680e885eafdba6
__device__ __forceinline__ int kiln_div_i32(int a, int b) {
  return b == 0 ? 0 : b == -1 ? (int)(0u - (unsigned)a) : a / b;
}
#endif
extern "C" __global__ void __launch_bounds__(64) k_matmul_tiled_d4d2e68f0a(const float* __restrict__ b0, const float* __restrict__ b1, float* __restrict__ b2, int tilesN0, int tilesM1, int nb2, int dm03, int dn04, int dk05, int sabatch06, int kfa7, int sam08, int sbbatch09, int kfb10, int sbn011, int sak012, int sbk013, int sobatch014, int som015, int son016) {
  KILN_SHARED(float, sh_As0, 512);
  KILN_SHARED(float, sh_Bs1, 512);
  const int l_0 = ((int)(threadIdx.x));
  const int tx_1 = (l_0 % 8);
  const int ty_2 = (l_0 / 8);
  const int g_3 = ((int)((blockIdx.x + (blockIdx.y * gridDim.x))));
  const int tn_4 = kiln_mod_i32(g_3, tilesN0);
  const int rest_5 = kiln_div_i32(g_3, tilesN0);
  const int tm_6 = kiln_mod_i32(rest_5, tilesM1);
  const int bi_7 = kiln_div_i32(rest_5, tilesM1);
  const bool live_8 = (bi_7 < nb2);
  const int bi_9 = (live_8 ? bi_7 : 0);
  const int m0_10 = (tm_6 * 64);
  const int n0_11 = (tn_4 * 64);
  const int base_12 = (bi_9 * sabatch06);
  const bool kf_13 = (kfa7 != 0);
  const int kk_14 = (l_0 % 8);
  const int ks_15 = (l_0 / 8);
  const int xx_16 = (l_0 % 64);
  const int xs_17 = (l_0 / 64);
  const int xx_18 = (kf_13 ? ks_15 : xx_16);
  const int kk_19 = (kf_13 ? kk_14 : xs_17);
  const int si_20 = ((kk_19 * 64) + xx_18);
  const int xa_21 = (m0_10 + xx_18);
  const bool xin_22 = (live_8 && (xa_21 < dm03));
  const int xo_23 = (base_12 + (xa_21 * sam08));
  const int xx_24 = (kf_13 ? (ks_15 + 8) : xx_16);
  const int kk_25 = (kf_13 ? kk_14 : (xs_17 + 1));
  const int si_26 = ((kk_25 * 64) + xx_24);
  const int xa_27 = (m0_10 + xx_24);
  const bool xin_28 = (live_8 && (xa_27 < dm03));
  const int xo_29 = (base_12 + (xa_27 * sam08));
  const int xx_30 = (kf_13 ? (ks_15 + 16) : xx_16);
  const int kk_31 = (kf_13 ? kk_14 : (xs_17 + 2));
  const int si_32 = ((kk_31 * 64) + xx_30);
  const int xa_33 = (m0_10 + xx_30);
  const bool xin_34 = (live_8 && (xa_33 < dm03));
  const int xo_35 = (base_12 + (xa_33 * sam08));
  const int xx_36 = (kf_13 ? (ks_15 + 24) : xx_16);
  const int kk_37 = (kf_13 ? kk_14 : (xs_17 + 3));
  const int si_38 = ((kk_37 * 64) + xx_36);
  const int xa_39 = (m0_10 + xx_36);
  const bool xin_40 = (live_8 && (xa_39 < dm03));
  const int xo_41 = (base_12 + (xa_39 * sam08));
  const int xx_42 = (kf_13 ? (ks_15 + 32) : xx_16);
  const int kk_43 = (kf_13 ? kk_14 : (xs_17 + 4));
  const int si_44 = ((kk_43 * 64) + xx_42);
  const int xa_45 = (m0_10 + xx_42);
  const bool xin_46 = (live_8 && (xa_45 < dm03));
  const int xo_47 = (base_12 + (xa_45 * sam08));
  const int xx_48 = (kf_13 ? (ks_15 + 40) : xx_16);
  const int kk_49 = (kf_13 ? kk_14 : (xs_17 + 5));
  const int si_50 = ((kk_49 * 64) + xx_48);
  const int xa_51 = (m0_10 + xx_48);
  const bool xin_52 = (live_8 && (xa_51 < dm03));
  const int xo_53 = (base_12 + (xa_51 * sam08));
  const int xx_54 = (kf_13 ? (ks_15 + 48) : xx_16);
  const int kk_55 = (kf_13 ? kk_14 : (xs_17 + 6));
  const int si_56 = ((kk_55 * 64) + xx_54);
  const int xa_57 = (m0_10 + xx_54);
  const bool xin_58 = (live_8 && (xa_57 < dm03));
  const int xo_59 = (base_12 + (xa_57 * sam08));
  const int xx_60 = (kf_13 ? (ks_15 + 56) : xx_16);
  const int kk_61 = (kf_13 ? kk_14 : (xs_17 + 7));
  const int si_62 = ((kk_61 * 64) + xx_60);
  const int xa_63 = (m0_10 + xx_60);
  const bool xin_64 = (live_8 && (xa_63 < dm03));
  const int xo_65 = (base_12 + (xa_63 * sam08));
  const int base_66 = (bi_9 * sbbatch09);
  const bool kf_67 = (kfb10 != 0);
  const int kk_68 = (l_0 % 8);
  const int ks_69 = (l_0 / 8);
  const int xx_70 = (l_0 % 64);
  const int xs_71 = (l_0 / 64);
  const int xx_72 = (kf_67 ? ks_69 : xx_70);
  const int kk_73 = (kf_67 ? kk_68 : xs_71);
  const int si_74 = ((kk_73 * 64) + xx_72);
  const int xa_75 = (n0_11 + xx_72);
  const bool xin_76 = (live_8 && (xa_75 < dn04));
  const int xo_77 = (base_66 + (xa_75 * sbn011));
  const int xx_78 = (kf_67 ? (ks_69 + 8) : xx_70);
  const int kk_79 = (kf_67 ? kk_68 : (xs_71 + 1));
  const int si_80 = ((kk_79 * 64) + xx_78);
  const int xa_81 = (n0_11 + xx_78);
  const bool xin_82 = (live_8 && (xa_81 < dn04));
  const int xo_83 = (base_66 + (xa_81 * sbn011));
  const int xx_84 = (kf_67 ? (ks_69 + 16) : xx_70);
  const int kk_85 = (kf_67 ? kk_68 : (xs_71 + 2));
  const int si_86 = ((kk_85 * 64) + xx_84);
  const int xa_87 = (n0_11 + xx_84);
  const bool xin_88 = (live_8 && (xa_87 < dn04));
  const int xo_89 = (base_66 + (xa_87 * sbn011));
  const int xx_90 = (kf_67 ? (ks_69 + 24) : xx_70);
  const int kk_91 = (kf_67 ? kk_68 : (xs_71 + 3));
  const int si_92 = ((kk_91 * 64) + xx_90);
  const int xa_93 = (n0_11 + xx_90);
  const bool xin_94 = (live_8 && (xa_93 < dn04));
  const int xo_95 = (base_66 + (xa_93 * sbn011));
  const int xx_96 = (kf_67 ? (ks_69 + 32) : xx_70);
  const int kk_97 = (kf_67 ? kk_68 : (xs_71 + 4));
  const int si_98 = ((kk_97 * 64) + xx_96);
  const int xa_99 = (n0_11 + xx_96);
  const bool xin_100 = (live_8 && (xa_99 < dn04));
  const int xo_101 = (base_66 + (xa_99 * sbn011));
  const int xx_102 = (kf_67 ? (ks_69 + 40) : xx_70);
  const int kk_103 = (kf_67 ? kk_68 : (xs_71 + 5));
  const int si_104 = ((kk_103 * 64) + xx_102);
  const int xa_105 = (n0_11 + xx_102);
  const bool xin_106 = (live_8 && (xa_105 < dn04));
  const int xo_107 = (base_66 + (xa_105 * sbn011));
  const int xx_108 = (kf_67 ? (ks_69 + 48) : xx_70);
  const int kk_109 = (kf_67 ? kk_68 : (xs_71 + 6));
  const int si_110 = ((kk_109 * 64) + xx_108);
  const int xa_111 = (n0_11 + xx_108);
  const bool xin_112 = (live_8 && (xa_111 < dn04));
  const int xo_113 = (base_66 + (xa_111 * sbn011));
  const int xx_114 = (kf_67 ? (ks_69 + 56) : xx_70);
  const int kk_115 = (kf_67 ? kk_68 : (xs_71 + 7));
  const int si_116 = ((kk_115 * 64) + xx_114);
  const int xa_117 = (n0_11 + xx_114);
  const bool xin_118 = (live_8 && (xa_117 < dn04));
  const int xo_119 = (base_66 + (xa_117 * sbn011));
  float acc0_0 = 0.0f;
  float acc0_1 = 0.0f;
  float acc0_2 = 0.0f;
  float acc0_3 = 0.0f;
  float acc0_4 = 0.0f;
  float acc0_5 = 0.0f;
  float acc0_6 = 0.0f;
  float acc0_7 = 0.0f;
  float acc1_0 = 0.0f;
  float acc1_1 = 0.0f;
  float acc1_2 = 0.0f;
  float acc1_3 = 0.0f;
  float acc1_4 = 0.0f;
  float acc1_5 = 0.0f;
  float acc1_6 = 0.0f;
  float acc1_7 = 0.0f;
  float acc2_0 = 0.0f;
  float acc2_1 = 0.0f;
  float acc2_2 = 0.0f;
  float acc2_3 = 0.0f;
  float acc2_4 = 0.0f;
  float acc2_5 = 0.0f;
  float acc2_6 = 0.0f;
  float acc2_7 = 0.0f;
  float acc3_0 = 0.0f;
  float acc3_1 = 0.0f;
  float acc3_2 = 0.0f;
  float acc3_3 = 0.0f;
  float acc3_4 = 0.0f;
  float acc3_5 = 0.0f;
  float acc3_6 = 0.0f;
  float acc3_7 = 0.0f;
  float acc4_0 = 0.0f;
  float acc4_1 = 0.0f;
  float acc4_2 = 0.0f;
  float acc4_3 = 0.0f;
  float acc4_4 = 0.0f;
  float acc4_5 = 0.0f;
  float acc4_6 = 0.0f;
  float acc4_7 = 0.0f;
  float acc5_0 = 0.0f;
  float acc5_1 = 0.0f;
  float acc5_2 = 0.0f;
  float acc5_3 = 0.0f;
  float acc5_4 = 0.0f;
  float acc5_5 = 0.0f;
  float acc5_6 = 0.0f;
  float acc5_7 = 0.0f;
  float acc6_0 = 0.0f;
  float acc6_1 = 0.0f;
  float acc6_2 = 0.0f;
  float acc6_3 = 0.0f;
  float acc6_4 = 0.0f;
  float acc6_5 = 0.0f;
  float acc6_6 = 0.0f;
  float acc6_7 = 0.0f;
  float acc7_0 = 0.0f;
  float acc7_1 = 0.0f;
  float acc7_2 = 0.0f;
  float acc7_3 = 0.0f;
  float acc7_4 = 0.0f;
  float acc7_5 = 0.0f;
  float acc7_6 = 0.0f;
  float acc7_7 = 0.0f;
  for (int k0 = 0; k0 < dk05; k0 += 8) {
    const int ka_120 = (k0 + kk_19);
    const bool inb_121 = (xin_22 && (ka_120 < dk05));
    sh_As0[si_20] = (inb_121 ? b0[(inb_121 ? (xo_23 + (ka_120 * sak012)) : 0)] : 0.0f);
    const int ka_122 = (k0 + kk_25);
    const bool inb_123 = (xin_28 && (ka_122 < dk05));
    sh_As0[si_26] = (inb_123 ? b0[(inb_123 ? (xo_29 + (ka_122 * sak012)) : 0)] : 0.0f);
    const int ka_124 = (k0 + kk_31);
    const bool inb_125 = (xin_34 && (ka_124 < dk05));
    sh_As0[si_32] = (inb_125 ? b0[(inb_125 ? (xo_35 + (ka_124 * sak012)) : 0)] : 0.0f);
    const int ka_126 = (k0 + kk_37);
    const bool inb_127 = (xin_40 && (ka_126 < dk05));
    sh_As0[si_38] = (inb_127 ? b0[(inb_127 ? (xo_41 + (ka_126 * sak012)) : 0)] : 0.0f);
    const int ka_128 = (k0 + kk_43);
    const bool inb_129 = (xin_46 && (ka_128 < dk05));
    sh_As0[si_44] = (inb_129 ? b0[(inb_129 ? (xo_47 + (ka_128 * sak012)) : 0)] : 0.0f);
    const int ka_130 = (k0 + kk_49);
    const bool inb_131 = (xin_52 && (ka_130 < dk05));
    sh_As0[si_50] = (inb_131 ? b0[(inb_131 ? (xo_53 + (ka_130 * sak012)) : 0)] : 0.0f);
    const int ka_132 = (k0 + kk_55);
    const bool inb_133 = (xin_58 && (ka_132 < dk05));
    sh_As0[si_56] = (inb_133 ? b0[(inb_133 ? (xo_59 + (ka_132 * sak012)) : 0)] : 0.0f);
    const int ka_134 = (k0 + kk_61);
    const bool inb_135 = (xin_64 && (ka_134 < dk05));
    sh_As0[si_62] = (inb_135 ? b0[(inb_135 ? (xo_65 + (ka_134 * sak012)) : 0)] : 0.0f);
    const int ka_136 = (k0 + kk_73);
    const bool inb_137 = (xin_76 && (ka_136 < dk05));
    sh_Bs1[si_74] = (inb_137 ? b1[(inb_137 ? (xo_77 + (ka_136 * sbk013)) : 0)] : 0.0f);
    const int ka_138 = (k0 + kk_79);
    const bool inb_139 = (xin_82 && (ka_138 < dk05));
    sh_Bs1[si_80] = (inb_139 ? b1[(inb_139 ? (xo_83 + (ka_138 * sbk013)) : 0)] : 0.0f);
    const int ka_140 = (k0 + kk_85);
    const bool inb_141 = (xin_88 && (ka_140 < dk05));
    sh_Bs1[si_86] = (inb_141 ? b1[(inb_141 ? (xo_89 + (ka_140 * sbk013)) : 0)] : 0.0f);
    const int ka_142 = (k0 + kk_91);
    const bool inb_143 = (xin_94 && (ka_142 < dk05));
    sh_Bs1[si_92] = (inb_143 ? b1[(inb_143 ? (xo_95 + (ka_142 * sbk013)) : 0)] : 0.0f);
    const int ka_144 = (k0 + kk_97);
    const bool inb_145 = (xin_100 && (ka_144 < dk05));
    sh_Bs1[si_98] = (inb_145 ? b1[(inb_145 ? (xo_101 + (ka_144 * sbk013)) : 0)] : 0.0f);
    const int ka_146 = (k0 + kk_103);
    const bool inb_147 = (xin_106 && (ka_146 < dk05));
    sh_Bs1[si_104] = (inb_147 ? b1[(inb_147 ? (xo_107 + (ka_146 * sbk013)) : 0)] : 0.0f);
    const int ka_148 = (k0 + kk_109);
    const bool inb_149 = (xin_112 && (ka_148 < dk05));
    sh_Bs1[si_110] = (inb_149 ? b1[(inb_149 ? (xo_113 + (ka_148 * sbk013)) : 0)] : 0.0f);
    const int ka_150 = (k0 + kk_115);
    const bool inb_151 = (xin_118 && (ka_150 < dk05));
    sh_Bs1[si_116] = (inb_151 ? b1[(inb_151 ? (xo_119 + (ka_150 * sbk013)) : 0)] : 0.0f);
    __syncthreads();
    for (int kq = 0; kq < 8; kq += 1) {
      const int ra_152 = ((kq * 64) + ty_2);
      const int rb_153 = ((kq * 64) + tx_1);
      const float a_154 = sh_As0[ra_152];
      const float a_155 = sh_As0[(ra_152 + 8)];
      const float a_156 = sh_As0[(ra_152 + 16)];
      const float a_157 = sh_As0[(ra_152 + 24)];
      const float a_158 = sh_As0[(ra_152 + 32)];
      const float a_159 = sh_As0[(ra_152 + 40)];
      const float a_160 = sh_As0[(ra_152 + 48)];
      const float a_161 = sh_As0[(ra_152 + 56)];
      const float b_162 = sh_Bs1[rb_153];
      const float b_163 = sh_Bs1[(rb_153 + 8)];
      const float b_164 = sh_Bs1[(rb_153 + 16)];
      const float b_165 = sh_Bs1[(rb_153 + 24)];
      const float b_166 = sh_Bs1[(rb_153 + 32)];
      const float b_167 = sh_Bs1[(rb_153 + 40)];
      const float b_168 = sh_Bs1[(rb_153 + 48)];
      const float b_169 = sh_Bs1[(rb_153 + 56)];
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
    __syncthreads();
  }
  const int base_170 = (bi_9 * sobatch014);
  const int mi_171 = (m0_10 + ty_2);
  const bool min_172 = (live_8 && (mi_171 < dm03));
  const int mo_173 = (base_170 + (mi_171 * som015));
  const int mi_174 = (m0_10 + (ty_2 + 8));
  const bool min_175 = (live_8 && (mi_174 < dm03));
  const int mo_176 = (base_170 + (mi_174 * som015));
  const int mi_177 = (m0_10 + (ty_2 + 16));
  const bool min_178 = (live_8 && (mi_177 < dm03));
  const int mo_179 = (base_170 + (mi_177 * som015));
  const int mi_180 = (m0_10 + (ty_2 + 24));
  const bool min_181 = (live_8 && (mi_180 < dm03));
  const int mo_182 = (base_170 + (mi_180 * som015));
  const int mi_183 = (m0_10 + (ty_2 + 32));
  const bool min_184 = (live_8 && (mi_183 < dm03));
  const int mo_185 = (base_170 + (mi_183 * som015));
  const int mi_186 = (m0_10 + (ty_2 + 40));
  const bool min_187 = (live_8 && (mi_186 < dm03));
  const int mo_188 = (base_170 + (mi_186 * som015));
  const int mi_189 = (m0_10 + (ty_2 + 48));
  const bool min_190 = (live_8 && (mi_189 < dm03));
  const int mo_191 = (base_170 + (mi_189 * som015));
  const int mi_192 = (m0_10 + (ty_2 + 56));
  const bool min_193 = (live_8 && (mi_192 < dm03));
  const int mo_194 = (base_170 + (mi_192 * som015));
  const int nj_195 = (n0_11 + tx_1);
  const bool nin_196 = (nj_195 < dn04);
  const int no_197 = (nj_195 * son016);
  const int nj_198 = (n0_11 + (tx_1 + 8));
  const bool nin_199 = (nj_198 < dn04);
  const int no_200 = (nj_198 * son016);
  const int nj_201 = (n0_11 + (tx_1 + 16));
  const bool nin_202 = (nj_201 < dn04);
  const int no_203 = (nj_201 * son016);
  const int nj_204 = (n0_11 + (tx_1 + 24));
  const bool nin_205 = (nj_204 < dn04);
  const int no_206 = (nj_204 * son016);
  const int nj_207 = (n0_11 + (tx_1 + 32));
  const bool nin_208 = (nj_207 < dn04);
  const int no_209 = (nj_207 * son016);
  const int nj_210 = (n0_11 + (tx_1 + 40));
  const bool nin_211 = (nj_210 < dn04);
  const int no_212 = (nj_210 * son016);
  const int nj_213 = (n0_11 + (tx_1 + 48));
  const bool nin_214 = (nj_213 < dn04);
  const int no_215 = (nj_213 * son016);
  const int nj_216 = (n0_11 + (tx_1 + 56));
  const bool nin_217 = (nj_216 < dn04);
  const int no_218 = (nj_216 * son016);
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
KILN_EMU_REGISTER(k_matmul_tiled_d4d2e68f0a);
