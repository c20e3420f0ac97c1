// k_gelu_57b1f77c50
extern "C" __global__ void __launch_bounds__(256) k_gelu_57b1f77c50(const __half* __restrict__ b0, __half* __restrict__ b1, int n0) {
  const int g0 = ((int)((blockIdx.x + (blockIdx.y * gridDim.x))));
  const int l1 = ((int)(threadIdx.x));
  const int t2 = ((g0 * 256) + l1);
  if ((t2 < n0)) {
    b1[t2] = __float2half_rn(((0.5f * __half2float(b0[t2])) * (1.0f + tanhf((0.7978846f * (__half2float(b0[t2]) + (0.044715f * (__half2float(b0[t2]) * (__half2float(b0[t2]) * __half2float(b0[t2]))))))))));
  }
}
KILN_EMU_REGISTER(k_gelu_57b1f77c50)
