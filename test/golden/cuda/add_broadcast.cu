// k_add_54d3434ca2
extern "C" __global__ void __launch_bounds__(256) k_add_54d3434ca2(const float* __restrict__ b0, const float* __restrict__ b1, float* __restrict__ b2, int n0, int od1) {
  const int g0 = ((int)((blockIdx.x + (blockIdx.y * gridDim.x))));
  const int l1 = ((int)(threadIdx.x));
  const int t2 = ((g0 * 256) + l1);
  if ((t2 < n0)) {
    const int o3 = (t2 % od1);
    const int q4 = (t2 / od1);
    b2[t2] = (b0[t2] + b1[o3]);
  }
}
KILN_EMU_REGISTER(k_add_54d3434ca2)
