// k_greater_90cc2896bf
extern "C" __global__ void __launch_bounds__(256) k_greater_90cc2896bf(const float* __restrict__ b0, const float* __restrict__ b1, unsigned* __restrict__ b2, int n0, int w1, int od2) {
  const int g0 = ((int)((blockIdx.x + (blockIdx.y * gridDim.x))));
  const int l1 = ((int)(threadIdx.x));
  const int t2 = ((g0 * 256) + l1);
  if ((t2 < w1)) {
    const int e3 = (t2 * 4);
    const int ec4 = ((e3 < n0) ? e3 : 0);
    const int o5 = (ec4 % od2);
    const int q6 = (ec4 / od2);
    const int v7 = ((b0[ec4] > b1[q6]) ? 1 : 0);
    const int e8 = ((t2 * 4) + 1);
    const int ec9 = ((e8 < n0) ? e8 : 0);
    const int o10 = (ec9 % od2);
    const int q11 = (ec9 / od2);
    const int v12 = ((b0[ec9] > b1[q11]) ? 1 : 0);
    const int e13 = ((t2 * 4) + 2);
    const int ec14 = ((e13 < n0) ? e13 : 0);
    const int o15 = (ec14 % od2);
    const int q16 = (ec14 / od2);
    const int v17 = ((b0[ec14] > b1[q16]) ? 1 : 0);
    const int e18 = ((t2 * 4) + 3);
    const int ec19 = ((e18 < n0) ? e18 : 0);
    const int o20 = (ec19 % od2);
    const int q21 = (ec19 / od2);
    const int v22 = ((b0[ec19] > b1[q21]) ? 1 : 0);
    b2[t2] = ((((0u | (((unsigned)(v7)) & 255u)) | ((((unsigned)(v12)) & 255u) << 8u)) | ((((unsigned)(v17)) & 255u) << 16u)) | ((((unsigned)(v22)) & 255u) << 24u));
  }
}
KILN_EMU_REGISTER(k_greater_90cc2896bf)
