// k_layer_norm_a540024a08
extern "C" __global__ void __launch_bounds__(64) k_layer_norm_a540024a08(const float* __restrict__ b0, const float* __restrict__ b1, const float* __restrict__ b2, float* __restrict__ b3, int ks0, int len1, int rows2, int units3) {
  KILN_SHARED(float, sh_sh0, 64);
  const int g_0 = ((int)((blockIdx.x + (blockIdx.y * gridDim.x))));
  const int l_1 = ((int)(threadIdx.x));
  if ((g_0 < units3)) {
    const int off_2 = (g_0 * ks0);
    const float n_3 = ((float)(len1));
    const float k_4 = b0[off_2];
    float acc_5 = 0.0f;
    for (int j_6 = l_1; j_6 < len1; j_6 += 64) {
      const int at_7 = (off_2 + j_6);
      const float e_8 = (b0[at_7] - k_4);
      const float n_9 = (acc_5 + e_8);
      acc_5 = n_9;
    }
    sh_sh0[l_1] = acc_5;
    __syncthreads();
    if ((l_1 < 32)) {
      const float x_10 = sh_sh0[l_1];
      const float y_11 = sh_sh0[(l_1 + 32)];
      const float z_12 = (x_10 + y_11);
      sh_sh0[l_1] = z_12;
    }
    __syncthreads();
    if ((l_1 < 32)) {
      const float x_13 = sh_sh0[l_1];
      const float y_14 = __shfl_xor_sync(0xffffffffu, x_13, 16);
      const float z_15 = (x_13 + y_14);
      const float y_16 = __shfl_xor_sync(0xffffffffu, z_15, 8);
      const float z_17 = (z_15 + y_16);
      const float y_18 = __shfl_xor_sync(0xffffffffu, z_17, 4);
      const float z_19 = (z_17 + y_18);
      const float y_20 = __shfl_xor_sync(0xffffffffu, z_19, 2);
      const float z_21 = (z_19 + y_20);
      const float y_22 = __shfl_xor_sync(0xffffffffu, z_21, 1);
      const float z_23 = (z_21 + y_22);
      if ((l_1 == 0)) {
        sh_sh0[0] = z_23;
      }
    }
    __syncthreads();
    const float red_24 = sh_sh0[0];
    __syncthreads();
    const float dmean_25 = ((len1 == 0) ? __int_as_float(0x7fc00000) : (red_24 / n_3));
    const float mean_26 = (k_4 + dmean_25);
    float acc_27 = 0.0f;
    for (int j_28 = l_1; j_28 < len1; j_28 += 64) {
      const int at_29 = (off_2 + j_28);
      const float d_30 = ((b0[at_29] - k_4) - dmean_25);
      const float e_31 = (d_30 * d_30);
      const float n_32 = (acc_27 + e_31);
      acc_27 = n_32;
    }
    sh_sh0[l_1] = acc_27;
    __syncthreads();
    if ((l_1 < 32)) {
      const float x_33 = sh_sh0[l_1];
      const float y_34 = sh_sh0[(l_1 + 32)];
      const float z_35 = (x_33 + y_34);
      sh_sh0[l_1] = z_35;
    }
    __syncthreads();
    if ((l_1 < 32)) {
      const float x_36 = sh_sh0[l_1];
      const float y_37 = __shfl_xor_sync(0xffffffffu, x_36, 16);
      const float z_38 = (x_36 + y_37);
      const float y_39 = __shfl_xor_sync(0xffffffffu, z_38, 8);
      const float z_40 = (z_38 + y_39);
      const float y_41 = __shfl_xor_sync(0xffffffffu, z_40, 4);
      const float z_42 = (z_40 + y_41);
      const float y_43 = __shfl_xor_sync(0xffffffffu, z_42, 2);
      const float z_44 = (z_42 + y_43);
      const float y_45 = __shfl_xor_sync(0xffffffffu, z_44, 1);
      const float z_46 = (z_44 + y_45);
      if ((l_1 == 0)) {
        sh_sh0[0] = z_46;
      }
    }
    __syncthreads();
    const float red_47 = sh_sh0[0];
    __syncthreads();
    const float inv_48 = (1.0f / sqrtf((((len1 == 0) ? __int_as_float(0x7fc00000) : (red_47 / n_3)) + 0.00001f)));
    for (int j_49 = l_1; j_49 < len1; j_49 += 64) {
      const int at_50 = (off_2 + j_49);
      b3[at_50] = (((((b0[at_50] - k_4) - dmean_25) * inv_48) * b1[j_49]) + b2[j_49]);
    }
  }
}
KILN_EMU_REGISTER(k_layer_norm_a540024a08);
