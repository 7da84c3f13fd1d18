/* layernorm over each row of x[ROWS][D]: y = (x - mean) / sqrt(var + 1e-5) * gamma + beta,
 * var the biased variance in two passes (workloads/kernels/layernorm.py). SIMD128: each
 * pass on f32x4 (four partial sums, one horizontal sum per row), a scalar tail for
 * D mod 4. sqrt and the divide are each correctly rounded, as the generator's rsqrt. */
#include "mb_kernel.h"

MB_EXPORT void run(const float* restrict x, const float* restrict gamma,
                   const float* restrict beta, float* restrict y) {
  for (int r = 0; r < ROWS; r++) {
    const float* xr = x + r * D;
    float* yr = y + r * D;
    int c = 0;
    float sum = 0.0f;
#ifdef __wasm_simd128__
    v128_t s4 = wasm_f32x4_splat(0.0f);
    for (; c + 4 <= D; c += 4) s4 = wasm_f32x4_add(s4, wasm_v128_load(xr + c));
    sum = mb_hsum4(s4);
#endif
    for (; c < D; c++) sum += xr[c];
    float mean = sum / (float)D;
    float sq = 0.0f;
    c = 0;
#ifdef __wasm_simd128__
    v128_t q4 = wasm_f32x4_splat(0.0f), mv = wasm_f32x4_splat(mean);
    for (; c + 4 <= D; c += 4) {
      v128_t d = wasm_f32x4_sub(wasm_v128_load(xr + c), mv);
      q4 = wasm_f32x4_add(q4, wasm_f32x4_mul(d, d));
    }
    sq = mb_hsum4(q4);
#endif
    for (; c < D; c++) {
      float d = xr[c] - mean;
      sq += d * d;
    }
    float inv = 1.0f / __builtin_sqrtf(sq / (float)D + 1e-5f);
    c = 0;
#ifdef __wasm_simd128__
    v128_t iv = wasm_f32x4_splat(inv);
    for (; c + 4 <= D; c += 4) {
      v128_t n = wasm_f32x4_mul(wasm_f32x4_sub(wasm_v128_load(xr + c), mv), iv);
      wasm_v128_store(yr + c, wasm_f32x4_add(wasm_f32x4_mul(n, wasm_v128_load(gamma + c)),
                                             wasm_v128_load(beta + c)));
    }
#endif
    for (; c < D; c++) yr[c] = (xr[c] - mean) * inv * gamma[c] + beta[c];
  }
}
