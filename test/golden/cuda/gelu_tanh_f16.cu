// k_gelu_39092b597b
extern "C" __global__ void __launch_bounds__(256) k_gelu_39092b597b(const __half* __restrict__ b0, __half* __restrict__ b1, int n0) {
  const int g_0 = ((int)((blockIdx.x + (blockIdx.y * gridDim.x))));
  const int l_1 = ((int)(threadIdx.x));
  const int t_2 = ((g_0 * 256) + l_1);
  if ((t_2 < n0)) {
    b1[t_2] = __float2half_rn(((0.5f * __half2float(b0[t_2])) * (1.0f + tanhf((0.7978846f * (__half2float(b0[t_2]) + (0.044715f * (__half2float(b0[t_2]) * (__half2float(b0[t_2]) * __half2float(b0[t_2]))))))))));
  }
}
KILN_EMU_REGISTER(k_gelu_39092b597b);
