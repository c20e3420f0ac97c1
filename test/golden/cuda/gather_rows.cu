// k_gather_b7b0258e96
extern "C" __global__ void __launch_bounds__(256) k_gather_b7b0258e96(const float* __restrict__ b0, const int* __restrict__ b1, float* __restrict__ b2, int n0, int od1, int od2, int d3, int in4) {
  const int g_0 = ((int)((blockIdx.x + (blockIdx.y * gridDim.x))));
  const int l_1 = ((int)(threadIdx.x));
  const int t_2 = ((g_0 * 256) + l_1);
  if ((t_2 < n0)) {
    const int o_3 = (t_2 % od1);
    const int q_4 = (t_2 / od1);
    const int o_5 = (q_4 % od2);
    const int q_6 = (q_4 / od2);
    const int ir_7 = b1[o_5];
    const int ix_8 = max(min(((ir_7 < 0) ? (ir_7 + d3) : ir_7), (d3 - 1)), 0);
    const int a_9 = ((((q_6 * d3) + ix_8) * in4) + o_3);
    b2[t_2] = b0[a_9];
  }
}
KILN_EMU_REGISTER(k_gather_b7b0258e96);
