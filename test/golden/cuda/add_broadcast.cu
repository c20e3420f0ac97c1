// k_add_11ff1da5d5
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
extern "C" __global__ void __launch_bounds__(256) k_add_11ff1da5d5(const float* __restrict__ b0, const float* __restrict__ b1, float* __restrict__ b2, int n0, int od1) {
  const int g_0 = ((int)((blockIdx.x + (blockIdx.y * gridDim.x))));
  const int l_1 = ((int)(threadIdx.x));
  const int t_2 = ((g_0 * 256) + l_1);
  if ((t_2 < n0)) {
    const int o_3 = kiln_mod_i32(t_2, od1);
    const int q_4 = kiln_div_i32(t_2, od1);
    b2[t_2] = (b0[t_2] + b1[o_3]);
  }
}
KILN_EMU_REGISTER(k_add_11ff1da5d5);
