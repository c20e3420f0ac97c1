// k_softmax_f95c3aa809
extern "C" __global__ void __launch_bounds__(128) k_softmax_f95c3aa809(const float* __restrict__ b0, float* __restrict__ b1, int ks0, int len1, int rows2, int units3) {
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
    if ((l_1 < 16)) {
      const float x_14 = sh_sh0[l_1];
      const float y_15 = sh_sh0[(l_1 + 16)];
      const float z_16 = (((y_15 > x_14) || isnan(y_15)) ? y_15 : x_14);
      sh_sh0[l_1] = z_16;
    }
    __syncthreads();
    if ((l_1 < 8)) {
      const float x_17 = sh_sh0[l_1];
      const float y_18 = sh_sh0[(l_1 + 8)];
      const float z_19 = (((y_18 > x_17) || isnan(y_18)) ? y_18 : x_17);
      sh_sh0[l_1] = z_19;
    }
    __syncthreads();
    if ((l_1 < 4)) {
      const float x_20 = sh_sh0[l_1];
      const float y_21 = sh_sh0[(l_1 + 4)];
      const float z_22 = (((y_21 > x_20) || isnan(y_21)) ? y_21 : x_20);
      sh_sh0[l_1] = z_22;
    }
    __syncthreads();
    if ((l_1 < 2)) {
      const float x_23 = sh_sh0[l_1];
      const float y_24 = sh_sh0[(l_1 + 2)];
      const float z_25 = (((y_24 > x_23) || isnan(y_24)) ? y_24 : x_23);
      sh_sh0[l_1] = z_25;
    }
    __syncthreads();
    if ((l_1 < 1)) {
      const float x_26 = sh_sh0[l_1];
      const float y_27 = sh_sh0[(l_1 + 1)];
      const float z_28 = (((y_27 > x_26) || isnan(y_27)) ? y_27 : x_26);
      sh_sh0[l_1] = z_28;
    }
    __syncthreads();
    const float red_29 = sh_sh0[0];
    __syncthreads();
    float acc_30 = 0.0f;
    for (int j_31 = l_1; j_31 < len1; j_31 += 128) {
      const int at_32 = (off_2 + j_31);
      const float e_33 = expf((b0[at_32] - red_29));
      const float n_34 = (acc_30 + e_33);
      acc_30 = n_34;
    }
    sh_sh0[l_1] = acc_30;
    __syncthreads();
    if ((l_1 < 64)) {
      const float x_35 = sh_sh0[l_1];
      const float y_36 = sh_sh0[(l_1 + 64)];
      const float z_37 = (x_35 + y_36);
      sh_sh0[l_1] = z_37;
    }
    __syncthreads();
    if ((l_1 < 32)) {
      const float x_38 = sh_sh0[l_1];
      const float y_39 = sh_sh0[(l_1 + 32)];
      const float z_40 = (x_38 + y_39);
      sh_sh0[l_1] = z_40;
    }
    __syncthreads();
    if ((l_1 < 16)) {
      const float x_41 = sh_sh0[l_1];
      const float y_42 = sh_sh0[(l_1 + 16)];
      const float z_43 = (x_41 + y_42);
      sh_sh0[l_1] = z_43;
    }
    __syncthreads();
    if ((l_1 < 8)) {
      const float x_44 = sh_sh0[l_1];
      const float y_45 = sh_sh0[(l_1 + 8)];
      const float z_46 = (x_44 + y_45);
      sh_sh0[l_1] = z_46;
    }
    __syncthreads();
    if ((l_1 < 4)) {
      const float x_47 = sh_sh0[l_1];
      const float y_48 = sh_sh0[(l_1 + 4)];
      const float z_49 = (x_47 + y_48);
      sh_sh0[l_1] = z_49;
    }
    __syncthreads();
    if ((l_1 < 2)) {
      const float x_50 = sh_sh0[l_1];
      const float y_51 = sh_sh0[(l_1 + 2)];
      const float z_52 = (x_50 + y_51);
      sh_sh0[l_1] = z_52;
    }
    __syncthreads();
    if ((l_1 < 1)) {
      const float x_53 = sh_sh0[l_1];
      const float y_54 = sh_sh0[(l_1 + 1)];
      const float z_55 = (x_53 + y_54);
      sh_sh0[l_1] = z_55;
    }
    __syncthreads();
    const float red_56 = sh_sh0[0];
    __syncthreads();
    for (int j_57 = l_1; j_57 < len1; j_57 += 128) {
      const int at_58 = (off_2 + j_57);
      const float z_59 = (b0[at_58] - red_29);
      b1[at_58] = (expf(z_59) / red_56);
    }
  }
}
KILN_EMU_REGISTER(k_softmax_f95c3aa809);
