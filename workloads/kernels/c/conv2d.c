/* conv2d: NHWC input x[B][H][W][CIN], HWIO weights w[KH][KW][CIN][COUT], bias[COUT],
 * stride S, zero padding P, output y[B][OH][OW][COUT], ReLU when RELU
 * (workloads/kernels/conv2d.py). Direct convolution: per output pixel, the output
 * channels in f32x4 accumulators (16 at a time, then 4, then scalar), each tap's input
 * value broadcast against the weights' contiguous COUT row; taps in the padding are
 * skipped. Scalar: the same loops, one accumulator per output channel. */
#include "mb_kernel.h"

static inline float mb_relu(float v) { return RELU && v < 0.0f ? 0.0f : v; }

MB_EXPORT void run(const float* restrict x, const float* restrict w,
                   const float* restrict bias, float* restrict y) {
  for (int b = 0; b < B; b++)
    for (int oy = 0; oy < OH; oy++)
      for (int ox = 0; ox < OW; ox++) {
        float* out = y + ((b * OH + oy) * OW + ox) * COUT;
        int co = 0;
#ifdef __wasm_simd128__
        for (; co + 16 <= COUT; co += 16) {
          v128_t s0 = wasm_v128_load(bias + co), s1 = wasm_v128_load(bias + co + 4);
          v128_t s2 = wasm_v128_load(bias + co + 8), s3 = wasm_v128_load(bias + co + 12);
          for (int ky = 0; ky < KH; ky++) {
            int iy = oy * S - P + ky;
            if (iy < 0 || iy >= H) continue;
            for (int kx = 0; kx < KW; kx++) {
              int ix = ox * S - P + kx;
              if (ix < 0 || ix >= W) continue;
              const float* in = x + ((b * H + iy) * W + ix) * CIN;
              const float* wr = w + ((ky * KW + kx) * CIN) * COUT + co;
              for (int ci = 0; ci < CIN; ci++, wr += COUT) {
                v128_t v = wasm_f32x4_splat(in[ci]);
                s0 = wasm_f32x4_add(s0, wasm_f32x4_mul(v, wasm_v128_load(wr)));
                s1 = wasm_f32x4_add(s1, wasm_f32x4_mul(v, wasm_v128_load(wr + 4)));
                s2 = wasm_f32x4_add(s2, wasm_f32x4_mul(v, wasm_v128_load(wr + 8)));
                s3 = wasm_f32x4_add(s3, wasm_f32x4_mul(v, wasm_v128_load(wr + 12)));
              }
            }
          }
          if (RELU) {
            v128_t z = wasm_f32x4_splat(0.0f);
            s0 = wasm_f32x4_pmax(s0, z), s1 = wasm_f32x4_pmax(s1, z);
            s2 = wasm_f32x4_pmax(s2, z), s3 = wasm_f32x4_pmax(s3, z);
          }
          wasm_v128_store(out + co, s0);
          wasm_v128_store(out + co + 4, s1);
          wasm_v128_store(out + co + 8, s2);
          wasm_v128_store(out + co + 12, s3);
        }
        for (; co + 4 <= COUT; co += 4) {
          v128_t s = wasm_v128_load(bias + co);
          for (int ky = 0; ky < KH; ky++) {
            int iy = oy * S - P + ky;
            if (iy < 0 || iy >= H) continue;
            for (int kx = 0; kx < KW; kx++) {
              int ix = ox * S - P + kx;
              if (ix < 0 || ix >= W) continue;
              const float* in = x + ((b * H + iy) * W + ix) * CIN;
              const float* wr = w + ((ky * KW + kx) * CIN) * COUT + co;
              for (int ci = 0; ci < CIN; ci++, wr += COUT)
                s = wasm_f32x4_add(s, wasm_f32x4_mul(wasm_f32x4_splat(in[ci]),
                                                     wasm_v128_load(wr)));
            }
          }
          if (RELU) s = wasm_f32x4_pmax(s, wasm_f32x4_splat(0.0f));
          wasm_v128_store(out + co, s);
        }
#endif
        for (; co < COUT; co++) {
          float s = bias[co];
          for (int ky = 0; ky < KH; ky++) {
            int iy = oy * S - P + ky;
            if (iy < 0 || iy >= H) continue;
            for (int kx = 0; kx < KW; kx++) {
              int ix = ox * S - P + kx;
              if (ix < 0 || ix >= W) continue;
              const float* in = x + ((b * H + iy) * W + ix) * CIN;
              const float* wr = w + ((ky * KW + kx) * CIN) * COUT + co;
              for (int ci = 0; ci < CIN; ci++) s += in[ci] * wr[ci * COUT];
            }
          }
          out[co] = mb_relu(s);
        }
      }
}
