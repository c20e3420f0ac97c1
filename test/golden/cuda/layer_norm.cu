// k_layer_norm_93c0e85da9
extern "C" __global__ void __launch_bounds__(64) k_layer_norm_93c0e85da9(const float* __restrict__ b0, const float* __restrict__ b1, const float* __restrict__ b2, float* __restrict__ b3, int ks0, int len1, int rows2, int units3) {
  KILN_SHARED(float, sh_sh0, 64);
  const int g_0 = ((int)((blockIdx.x + (blockIdx.y * gridDim.x))));
  const int l_1 = ((int)(threadIdx.x));
  if ((g_0 < units3)) {
    const int off_2 = (g_0 * ks0);
    const float n_3 = ((float)(len1));
    float acc_4 = 0.0f;
    for (int j_5 = l_1; j_5 < len1; j_5 += 64) {
      const int at_6 = (off_2 + j_5);
      const float e_7 = b0[at_6];
      const float n_8 = (acc_4 + e_7);
      acc_4 = n_8;
    }
    sh_sh0[l_1] = acc_4;
    __syncthreads();
    if ((l_1 < 32)) {
      const float x_9 = sh_sh0[l_1];
      const float y_10 = sh_sh0[(l_1 + 32)];
      const float z_11 = (x_9 + y_10);
      sh_sh0[l_1] = z_11;
    }
    __syncthreads();
    if ((l_1 < 16)) {
      const float x_12 = sh_sh0[l_1];
      const float y_13 = sh_sh0[(l_1 + 16)];
      const float z_14 = (x_12 + y_13);
      sh_sh0[l_1] = z_14;
    }
    __syncthreads();
    if ((l_1 < 8)) {
      const float x_15 = sh_sh0[l_1];
      const float y_16 = sh_sh0[(l_1 + 8)];
      const float z_17 = (x_15 + y_16);
      sh_sh0[l_1] = z_17;
    }
    __syncthreads();
    if ((l_1 < 4)) {
      const float x_18 = sh_sh0[l_1];
      const float y_19 = sh_sh0[(l_1 + 4)];
      const float z_20 = (x_18 + y_19);
      sh_sh0[l_1] = z_20;
    }
    __syncthreads();
    if ((l_1 < 2)) {
      const float x_21 = sh_sh0[l_1];
      const float y_22 = sh_sh0[(l_1 + 2)];
      const float z_23 = (x_21 + y_22);
      sh_sh0[l_1] = z_23;
    }
    __syncthreads();
    if ((l_1 < 1)) {
      const float x_24 = sh_sh0[l_1];
      const float y_25 = sh_sh0[(l_1 + 1)];
      const float z_26 = (x_24 + y_25);
      sh_sh0[l_1] = z_26;
    }
    __syncthreads();
    const float red_27 = sh_sh0[0];
    __syncthreads();
    const float mean_28 = ((len1 == 0) ? __int_as_float(0x7fc00000) : (red_27 / n_3));
    float acc_29 = 0.0f;
    for (int j_30 = l_1; j_30 < len1; j_30 += 64) {
      const int at_31 = (off_2 + j_30);
      const float d_32 = (b0[at_31] - mean_28);
      const float e_33 = (d_32 * d_32);
      const float n_34 = (acc_29 + e_33);
      acc_29 = n_34;
    }
    sh_sh0[l_1] = acc_29;
    __syncthreads();
    if ((l_1 < 32)) {
      const float x_35 = sh_sh0[l_1];
      const float y_36 = sh_sh0[(l_1 + 32)];
      const float z_37 = (x_35 + y_36);
      sh_sh0[l_1] = z_37;
    }
    __syncthreads();
    if ((l_1 < 16)) {
      const float x_38 = sh_sh0[l_1];
      const float y_39 = sh_sh0[(l_1 + 16)];
      const float z_40 = (x_38 + y_39);
      sh_sh0[l_1] = z_40;
    }
    __syncthreads();
    if ((l_1 < 8)) {
      const float x_41 = sh_sh0[l_1];
      const float y_42 = sh_sh0[(l_1 + 8)];
      const float z_43 = (x_41 + y_42);
      sh_sh0[l_1] = z_43;
    }
    __syncthreads();
    if ((l_1 < 4)) {
      const float x_44 = sh_sh0[l_1];
      const float y_45 = sh_sh0[(l_1 + 4)];
      const float z_46 = (x_44 + y_45);
      sh_sh0[l_1] = z_46;
    }
    __syncthreads();
    if ((l_1 < 2)) {
      const float x_47 = sh_sh0[l_1];
      const float y_48 = sh_sh0[(l_1 + 2)];
      const float z_49 = (x_47 + y_48);
      sh_sh0[l_1] = z_49;
    }
    __syncthreads();
    if ((l_1 < 1)) {
      const float x_50 = sh_sh0[l_1];
      const float y_51 = sh_sh0[(l_1 + 1)];
      const float z_52 = (x_50 + y_51);
      sh_sh0[l_1] = z_52;
    }
    __syncthreads();
    const float red_53 = sh_sh0[0];
    __syncthreads();
    const float inv_54 = (1.0f / sqrtf((((len1 == 0) ? __int_as_float(0x7fc00000) : (red_53 / n_3)) + 0.00001f)));
    for (int j_55 = l_1; j_55 < len1; j_55 += 64) {
      const int at_56 = (off_2 + j_55);
      b3[at_56] = ((((b0[at_56] - mean_28) * inv_54) * b1[j_55]) + b2[j_55]);
    }
  }
}
KILN_EMU_REGISTER(k_layer_norm_93c0e85da9);
