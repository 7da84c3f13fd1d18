/* GEMM: c[M][N] = a[M][K] @ b[K][N], row-major f32 (workloads/kernels/gemm.py).
 * SIMD128: register tiles of 4 rows x 8 columns (8 f32x4 accumulators), a[i][p]
 * broadcast, b's row segment loaded; then 4-wide and scalar column tails, and a one-row
 * loop for M mod 4. Scalar: the i-j-p loop. */
#include "mb_kernel.h"

MB_EXPORT void run(const float* restrict a, const float* restrict b, float* restrict c) {
#ifdef __wasm_simd128__
  int i = 0;
  for (; i + 4 <= M; i += 4) {
    const float* a0 = a + (i + 0) * K;
    const float* a1 = a + (i + 1) * K;
    const float* a2 = a + (i + 2) * K;
    const float* a3 = a + (i + 3) * K;
    int j = 0;
    for (; j + 8 <= N; j += 8) {
      v128_t c00 = wasm_f32x4_splat(0), c01 = c00, c10 = c00, c11 = c00;
      v128_t c20 = c00, c21 = c00, c30 = c00, c31 = c00;
      for (int p = 0; p < K; p++) {
        v128_t b0 = wasm_v128_load(b + p * N + j);
        v128_t b1 = wasm_v128_load(b + p * N + j + 4);
        v128_t x = wasm_f32x4_splat(a0[p]);
        c00 = wasm_f32x4_add(c00, wasm_f32x4_mul(x, b0));
        c01 = wasm_f32x4_add(c01, wasm_f32x4_mul(x, b1));
        x = wasm_f32x4_splat(a1[p]);
        c10 = wasm_f32x4_add(c10, wasm_f32x4_mul(x, b0));
        c11 = wasm_f32x4_add(c11, wasm_f32x4_mul(x, b1));
        x = wasm_f32x4_splat(a2[p]);
        c20 = wasm_f32x4_add(c20, wasm_f32x4_mul(x, b0));
        c21 = wasm_f32x4_add(c21, wasm_f32x4_mul(x, b1));
        x = wasm_f32x4_splat(a3[p]);
        c30 = wasm_f32x4_add(c30, wasm_f32x4_mul(x, b0));
        c31 = wasm_f32x4_add(c31, wasm_f32x4_mul(x, b1));
      }
      wasm_v128_store(c + (i + 0) * N + j, c00);
      wasm_v128_store(c + (i + 0) * N + j + 4, c01);
      wasm_v128_store(c + (i + 1) * N + j, c10);
      wasm_v128_store(c + (i + 1) * N + j + 4, c11);
      wasm_v128_store(c + (i + 2) * N + j, c20);
      wasm_v128_store(c + (i + 2) * N + j + 4, c21);
      wasm_v128_store(c + (i + 3) * N + j, c30);
      wasm_v128_store(c + (i + 3) * N + j + 4, c31);
    }
    for (; j + 4 <= N; j += 4) {
      v128_t c0 = wasm_f32x4_splat(0), c1 = c0, c2 = c0, c3 = c0;
      for (int p = 0; p < K; p++) {
        v128_t bv = wasm_v128_load(b + p * N + j);
        c0 = wasm_f32x4_add(c0, wasm_f32x4_mul(wasm_f32x4_splat(a0[p]), bv));
        c1 = wasm_f32x4_add(c1, wasm_f32x4_mul(wasm_f32x4_splat(a1[p]), bv));
        c2 = wasm_f32x4_add(c2, wasm_f32x4_mul(wasm_f32x4_splat(a2[p]), bv));
        c3 = wasm_f32x4_add(c3, wasm_f32x4_mul(wasm_f32x4_splat(a3[p]), bv));
      }
      wasm_v128_store(c + (i + 0) * N + j, c0);
      wasm_v128_store(c + (i + 1) * N + j, c1);
      wasm_v128_store(c + (i + 2) * N + j, c2);
      wasm_v128_store(c + (i + 3) * N + j, c3);
    }
    for (; j < N; j++) {
      float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (int p = 0; p < K; p++) {
        float bv = b[p * N + j];
        s0 += a0[p] * bv;
        s1 += a1[p] * bv;
        s2 += a2[p] * bv;
        s3 += a3[p] * bv;
      }
      c[(i + 0) * N + j] = s0;
      c[(i + 1) * N + j] = s1;
      c[(i + 2) * N + j] = s2;
      c[(i + 3) * N + j] = s3;
    }
  }
  for (; i < M; i++) {
    const float* ai = a + i * K;
    int j = 0;
    for (; j + 4 <= N; j += 4) {
      v128_t acc = wasm_f32x4_splat(0);
      for (int p = 0; p < K; p++)
        acc = wasm_f32x4_add(acc, wasm_f32x4_mul(wasm_f32x4_splat(ai[p]),
                                                 wasm_v128_load(b + p * N + j)));
      wasm_v128_store(c + i * N + j, acc);
    }
    for (; j < N; j++) {
      float s = 0;
      for (int p = 0; p < K; p++) s += ai[p] * b[p * N + j];
      c[i * N + j] = s;
    }
  }
#else
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      float s = 0;
      for (int p = 0; p < K; p++) s += a[i * K + p] * b[p * N + j];
      c[i * N + j] = s;
    }
#endif
}
