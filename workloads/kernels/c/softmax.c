/* softmax over each row of x[ROWS][COLS]: y = e^(x - max) / sum (workloads/kernels/
 * softmax.py). Three passes per row: the max; y = e^(x - max) with a running sum; y *=
 * 1/sum. SIMD128: each pass on f32x4 (four partial maxima and sums) with a scalar tail
 * for COLS mod 4, exp by mb_expf4 (the same arithmetic as the scalar mb_expf). */
#include "mb_kernel.h"

MB_EXPORT void run(const float* restrict x, float* restrict y) {
  for (int r = 0; r < ROWS; r++) {
    const float* xr = x + r * COLS;
    float* yr = y + r * COLS;
    int c = 0;
    float mx = xr[0];
#ifdef __wasm_simd128__
    v128_t m4 = wasm_f32x4_splat(xr[0]);
    for (; c + 4 <= COLS; c += 4) m4 = wasm_f32x4_pmax(m4, wasm_v128_load(xr + c));
    float l0 = wasm_f32x4_extract_lane(m4, 0), l1 = wasm_f32x4_extract_lane(m4, 1);
    float l2 = wasm_f32x4_extract_lane(m4, 2), l3 = wasm_f32x4_extract_lane(m4, 3);
    mx = mx < l0 ? l0 : mx;
    mx = mx < l1 ? l1 : mx;
    mx = mx < l2 ? l2 : mx;
    mx = mx < l3 ? l3 : mx;
#endif
    for (; c < COLS; c++) mx = mx < xr[c] ? xr[c] : mx;
    float sum = 0.0f;
    c = 0;
#ifdef __wasm_simd128__
    v128_t s4 = wasm_f32x4_splat(0.0f), mv = wasm_f32x4_splat(mx);
    for (; c + 4 <= COLS; c += 4) {
      v128_t e = mb_expf4(wasm_f32x4_sub(wasm_v128_load(xr + c), mv));
      wasm_v128_store(yr + c, e);
      s4 = wasm_f32x4_add(s4, e);
    }
    sum = mb_hsum4(s4);
#endif
    for (; c < COLS; c++) {
      float e = mb_expf(xr[c] - mx);
      yr[c] = e;
      sum += e;
    }
    float inv = 1.0f / sum;
    c = 0;
#ifdef __wasm_simd128__
    v128_t iv = wasm_f32x4_splat(inv);
    for (; c + 4 <= COLS; c += 4) wasm_v128_store(yr + c, wasm_f32x4_mul(wasm_v128_load(yr + c), iv));
#endif
    for (; c < COLS; c++) yr[c] *= inv;
  }
}
