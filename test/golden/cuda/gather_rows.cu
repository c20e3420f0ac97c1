// k_gather_20f510e265
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
extern "C" __global__ void __launch_bounds__(256) k_gather_20f510e265(const float* __restrict__ b0, const int* __restrict__ b1, float* __restrict__ b2, unsigned* __restrict__ b3, int n0, int od1, int od2, int d3, unsigned eslot4, int in5) {
  const int g_0 = ((int)((blockIdx.x + (blockIdx.y * gridDim.x))));
  const int l_1 = ((int)(threadIdx.x));
  const int t_2 = ((g_0 * 256) + l_1);
  if ((t_2 < n0)) {
    const int o_3 = kiln_mod_i32(t_2, od1);
    const int q_4 = kiln_div_i32(t_2, od1);
    const int o_5 = kiln_mod_i32(q_4, od2);
    const int q_6 = kiln_div_i32(q_4, od2);
    const int ir_7 = b1[o_5];
    const int iw_8 = ((ir_7 < 0) ? (ir_7 + d3) : ir_7);
    if (((iw_8 < 0) || (iw_8 >= d3))) {
      b3[0] = (eslot4 + 1u);
    }
    const int ix_9 = max(min(iw_8, (d3 - 1)), 0);
    const int a_10 = ((((q_6 * d3) + ix_9) * in5) + o_3);
    b2[t_2] = b0[a_10];
  }
}
KILN_EMU_REGISTER(k_gather_20f510e265);
