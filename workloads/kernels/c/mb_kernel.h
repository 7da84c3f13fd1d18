/* Shared by the C kernels (workloads/kernels/c): the kernel ABI and exp.
 *
 * Kernel ABI: `void run(float* buffer, ...)` exported as `run`, one pointer per buffer in
 * the workload's order; shapes are -D constants (one module per shape). No libc, no
 * static data (see harness/toolchain/clang.py).
 *
 * mb_expf / mb_expf4: e^x by Cody-Waite range reduction x = n*ln2 + r (ln2 split so that
 * n*ln2_hi is exact) and the Cephes expf degree-5 polynomial, 2^n applied as two exact
 * power-of-two multiplies; the same arithmetic, step for step, as the code generator's
 * harness/codegen/mathlib.py, so the same accuracy holds (max relative error 8.1e-8
 * where e^x is a normal f32). Wasm has no FMA without relaxed SIMD, so clang cannot fuse
 * the steps. */
#ifndef MB_KERNEL_H
#define MB_KERNEL_H

#include <stdint.h>
#ifdef __wasm_simd128__
#include <wasm_simd128.h>
#endif

#define MB_EXPORT __attribute__((export_name("run"), visibility("default")))

#define MB_EXP_LO (-104.0f)
#define MB_EXP_HI 88.73f
#define MB_LOG2E 1.44269504088896341f
#define MB_LN2_HI 0.693359375f
#define MB_LN2_LO (-2.12194440e-4f)
#define MB_MAGIC 12582912.0f /* 1.5 * 2^23: v + MAGIC rounds v to an integer */
#define MB_MAGIC_BITS 0x4B400000
#define MB_P0 1.9875691500e-4f
#define MB_P1 1.3981999507e-3f
#define MB_P2 8.3334519073e-3f
#define MB_P3 4.1665795894e-2f
#define MB_P4 1.6666665459e-1f
#define MB_P5 5.0000001201e-1f

static inline float mb_bits_to_f32(int32_t i) {
  union { int32_t i; float f; } u = {i};
  return u.f;
}

static inline int32_t mb_f32_to_bits(float f) {
  union { float f; int32_t i; } u = {f};
  return u.i;
}

static inline float mb_expf(float x) {
  x = MB_EXP_HI < x ? MB_EXP_HI : x; /* NaN passes through both */
  x = x < MB_EXP_LO ? MB_EXP_LO : x;
  float t = x * MB_LOG2E + MB_MAGIC;
  float n = t - MB_MAGIC;
  float r = (x - n * MB_LN2_HI) - n * MB_LN2_LO;
  float p = ((((MB_P0 * r + MB_P1) * r + MB_P2) * r + MB_P3) * r + MB_P4) * r + MB_P5;
  float e = (p * (r * r) + r) + 1.0f;
  int32_t ni = mb_f32_to_bits(t) - MB_MAGIC_BITS;
  int32_t n1 = ni >> 1;
  return (e * mb_bits_to_f32((n1 + 127) << 23)) * mb_bits_to_f32(((ni - n1) + 127) << 23);
}

#ifdef __wasm_simd128__
static inline v128_t mb_expf4(v128_t x) {
  x = wasm_f32x4_pmin(x, wasm_f32x4_splat(MB_EXP_HI)); /* HI < x ? HI : x */
  x = wasm_f32x4_pmax(x, wasm_f32x4_splat(MB_EXP_LO)); /* x < LO ? LO : x */
  v128_t t = wasm_f32x4_add(wasm_f32x4_mul(x, wasm_f32x4_splat(MB_LOG2E)),
                            wasm_f32x4_splat(MB_MAGIC));
  v128_t n = wasm_f32x4_sub(t, wasm_f32x4_splat(MB_MAGIC));
  v128_t r = wasm_f32x4_sub(wasm_f32x4_sub(x, wasm_f32x4_mul(n, wasm_f32x4_splat(MB_LN2_HI))),
                            wasm_f32x4_mul(n, wasm_f32x4_splat(MB_LN2_LO)));
  v128_t p = wasm_f32x4_splat(MB_P0);
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(MB_P1));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(MB_P2));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(MB_P3));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(MB_P4));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(MB_P5));
  v128_t e = wasm_f32x4_add(wasm_f32x4_add(wasm_f32x4_mul(p, wasm_f32x4_mul(r, r)), r),
                            wasm_f32x4_splat(1.0f));
  v128_t ni = wasm_i32x4_sub(t, wasm_i32x4_splat(MB_MAGIC_BITS));
  v128_t n1 = wasm_i32x4_shr(ni, 1);
  v128_t s1 = wasm_i32x4_shl(wasm_i32x4_add(n1, wasm_i32x4_splat(127)), 23);
  v128_t s2 = wasm_i32x4_shl(wasm_i32x4_add(wasm_i32x4_sub(ni, n1), wasm_i32x4_splat(127)), 23);
  return wasm_f32x4_mul(wasm_f32x4_mul(e, s1), s2);
}

/* the sum and the max of a vector's four lanes */
static inline float mb_hsum4(v128_t v) {
  return (wasm_f32x4_extract_lane(v, 0) + wasm_f32x4_extract_lane(v, 1)) +
         (wasm_f32x4_extract_lane(v, 2) + wasm_f32x4_extract_lane(v, 3));
}
#endif

#endif
