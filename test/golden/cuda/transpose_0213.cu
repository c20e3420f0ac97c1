// k_transpose_fc54579b43
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
extern "C" __global__ void __launch_bounds__(256) k_transpose_fc54579b43(const float* __restrict__ b0, float* __restrict__ b1, int n0, int od1, int od2, int od3, int st4, int st5, int st6) {
  const int g_0 = ((int)((blockIdx.x + (blockIdx.y * gridDim.x))));
  const int l_1 = ((int)(threadIdx.x));
  const int t_2 = ((g_0 * 256) + l_1);
  if ((t_2 < n0)) {
    const int o_3 = kiln_mod_i32(t_2, od1);
    const int q_4 = kiln_div_i32(t_2, od1);
    const int o_5 = kiln_mod_i32(q_4, od2);
    const int q_6 = kiln_div_i32(q_4, od2);
    const int o_7 = kiln_mod_i32(q_6, od3);
    const int q_8 = kiln_div_i32(q_6, od3);
    const int a_9 = ((((q_8 * st4) + (o_7 * st5)) + (o_5 * st6)) + o_3);
    b1[t_2] = b0[a_9];
  }
}
KILN_EMU_REGISTER(k_transpose_fc54579b43);
