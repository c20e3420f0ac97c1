// k_softmax_6e64c14e43
extern "C" __global__ void __launch_bounds__(128) k_softmax_6e64c14e43(const float* __restrict__ b0, float* __restrict__ b1, int ks0, int len1, int rows2, int units3) {
  KILN_SHARED(float, sh_sh0, 128);
  const int g_0 = ((int)((blockIdx.x + (blockIdx.y * gridDim.x))));
  const int l_1 = ((int)(threadIdx.x));
  if ((g_0 < units3)) {
    const int off_2 = (g_0 * ks0);
    float acc_3 = __int_as_float(0xff800000);
    for (int j_4 = l_1; j_4 < len1; j_4 += 128) {
      const int at_5 = (off_2 + j_4);
      const float e_6 = b0[at_5];
      const float n_7 = (((e_6 > acc_3) || isnan(e_6)) ? e_6 : acc_3);
      acc_3 = n_7;
    }
    sh_sh0[l_1] = acc_3;
    __syncthreads();
    if ((l_1 < 64)) {
      const float x_8 = sh_sh0[l_1];
      const float y_9 = sh_sh0[(l_1 + 64)];
      const float z_10 = (((y_9 > x_8) || isnan(y_9)) ? y_9 : x_8);
      sh_sh0[l_1] = z_10;
    }
    __syncthreads();
    if ((l_1 < 32)) {
      const float x_11 = sh_sh0[l_1];
      const float y_12 = sh_sh0[(l_1 + 32)];
      const float z_13 = (((y_12 > x_11) || isnan(y_12)) ? y_12 : x_11);
      sh_sh0[l_1] = z_13;
    }
    __syncthreads();
    if ((l_1 < 32)) {
      const float x_14 = sh_sh0[l_1];
      const float y_15 = __shfl_xor_sync(0xffffffffu, x_14, 16);
      const float z_16 = (((y_15 > x_14) || isnan(y_15)) ? y_15 : x_14);
      const float y_17 = __shfl_xor_sync(0xffffffffu, z_16, 8);
      const float z_18 = (((y_17 > z_16) || isnan(y_17)) ? y_17 : z_16);
      const float y_19 = __shfl_xor_sync(0xffffffffu, z_18, 4);
      const float z_20 = (((y_19 > z_18) || isnan(y_19)) ? y_19 : z_18);
      const float y_21 = __shfl_xor_sync(0xffffffffu, z_20, 2);
      const float z_22 = (((y_21 > z_20) || isnan(y_21)) ? y_21 : z_20);
      const float y_23 = __shfl_xor_sync(0xffffffffu, z_22, 1);
      const float z_24 = (((y_23 > z_22) || isnan(y_23)) ? y_23 : z_22);
      if ((l_1 == 0)) {
        sh_sh0[0] = z_24;
      }
    }
    __syncthreads();
    const float red_25 = sh_sh0[0];
    __syncthreads();
    float acc_26 = 0.0f;
    for (int j_27 = l_1; j_27 < len1; j_27 += 128) {
      const int at_28 = (off_2 + j_27);
      const float e_29 = expf((b0[at_28] - red_25));
      const float n_30 = (acc_26 + e_29);
      acc_26 = n_30;
    }
    sh_sh0[l_1] = acc_26;
    __syncthreads();
    if ((l_1 < 64)) {
      const float x_31 = sh_sh0[l_1];
      const float y_32 = sh_sh0[(l_1 + 64)];
      const float z_33 = (x_31 + y_32);
      sh_sh0[l_1] = z_33;
    }
    __syncthreads();
    if ((l_1 < 32)) {
      const float x_34 = sh_sh0[l_1];
      const float y_35 = sh_sh0[(l_1 + 32)];
      const float z_36 = (x_34 + y_35);
      sh_sh0[l_1] = z_36;
    }
    __syncthreads();
    if ((l_1 < 32)) {
      const float x_37 = sh_sh0[l_1];
      const float y_38 = __shfl_xor_sync(0xffffffffu, x_37, 16);
      const float z_39 = (x_37 + y_38);
      const float y_40 = __shfl_xor_sync(0xffffffffu, z_39, 8);
      const float z_41 = (z_39 + y_40);
      const float y_42 = __shfl_xor_sync(0xffffffffu, z_41, 4);
      const float z_43 = (z_41 + y_42);
      const float y_44 = __shfl_xor_sync(0xffffffffu, z_43, 2);
      const float z_45 = (z_43 + y_44);
      const float y_46 = __shfl_xor_sync(0xffffffffu, z_45, 1);
      const float z_47 = (z_45 + y_46);
      if ((l_1 == 0)) {
        sh_sh0[0] = z_47;
      }
    }
    __syncthreads();
    const float red_48 = sh_sh0[0];
    __syncthreads();
    for (int j_49 = l_1; j_49 < len1; j_49 += 128) {
      const int at_50 = (off_2 + j_49);
      const float z_51 = (b0[at_50] - red_25);
      b1[at_50] = (expf(z_51) / red_48);
    }
  }
}
KILN_EMU_REGISTER(k_softmax_6e64c14e43);
