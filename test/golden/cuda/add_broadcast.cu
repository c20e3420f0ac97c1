// k_add_11ff1da5d5
extern "C" __global__ void __launch_bounds__(256) k_add_11ff1da5d5(const float* __restrict__ b0, const float* __restrict__ b1, float* __restrict__ b2, int n0, int od1) {
  const int g_0 = ((int)((blockIdx.x + (blockIdx.y * gridDim.x))));
  const int l_1 = ((int)(threadIdx.x));
  const int t_2 = ((g_0 * 256) + l_1);
  if ((t_2 < n0)) {
    const int o_3 = (t_2 % od1);
    const int q_4 = (t_2 / od1);
    b2[t_2] = (b0[t_2] + b1[o_3]);
  }
}
KILN_EMU_REGISTER(k_add_11ff1da5d5);
