// k_greater_c481432d45
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
extern "C" __global__ void __launch_bounds__(256) k_greater_c481432d45(const float* __restrict__ b0, const float* __restrict__ b1, unsigned* __restrict__ b2, int n0, int w1, int od2) {
  const int g_0 = ((int)((blockIdx.x + (blockIdx.y * gridDim.x))));
  const int l_1 = ((int)(threadIdx.x));
  const int t_2 = ((g_0 * 256) + l_1);
  if ((t_2 < w1)) {
    const int e_3 = (t_2 * 4);
    const int ec_4 = ((e_3 < n0) ? e_3 : 0);
    const int o_5 = kiln_mod_i32(ec_4, od2);
    const int q_6 = kiln_div_i32(ec_4, od2);
    const int v_7 = ((b0[ec_4] > b1[q_6]) ? 1 : 0);
    const int e_8 = ((t_2 * 4) + 1);
    const int ec_9 = ((e_8 < n0) ? e_8 : 0);
    const int o_10 = kiln_mod_i32(ec_9, od2);
    const int q_11 = kiln_div_i32(ec_9, od2);
    const int v_12 = ((b0[ec_9] > b1[q_11]) ? 1 : 0);
    const int e_13 = ((t_2 * 4) + 2);
    const int ec_14 = ((e_13 < n0) ? e_13 : 0);
    const int o_15 = kiln_mod_i32(ec_14, od2);
    const int q_16 = kiln_div_i32(ec_14, od2);
    const int v_17 = ((b0[ec_14] > b1[q_16]) ? 1 : 0);
    const int e_18 = ((t_2 * 4) + 3);
    const int ec_19 = ((e_18 < n0) ? e_18 : 0);
    const int o_20 = kiln_mod_i32(ec_19, od2);
    const int q_21 = kiln_div_i32(ec_19, od2);
    const int v_22 = ((b0[ec_19] > b1[q_21]) ? 1 : 0);
    b2[t_2] = ((((0u | (((unsigned)(v_7)) & 255u)) | ((((unsigned)(v_12)) & 255u) << 8u)) | ((((unsigned)(v_17)) & 255u) << 16u)) | ((((unsigned)(v_22)) & 255u) << 24u));
  }
}
KILN_EMU_REGISTER(k_greater_c481432d45);
