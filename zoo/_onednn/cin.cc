// CondInstanceNorm++ (NCSN's normalisation), optionally followed by ELU, as XLA FFI handlers: one pass per image over
// memory, on all cores (see zoo/_onednn/_cin.py).
//
//   zoo_cin_fwd  x (N,H,W,C), gamma, alpha, beta (N,C)          -> y (N,H,W,C), stats (N,4,C)
//   zoo_cin_bwd  x, y, stats, gamma, alpha (as above), dy         -> dx, dgamma, dalpha, dbeta
// float32, NHWC, attribute `elu` (bool). y = act(gamma * (x_hat + alpha * mu_tilde) + beta), act ELU or none;
// stats holds, per image: the channel means mu, 1/std s (biased variance, eps 1e-5), the centred channel means u and
// their 1/std t (unbiased, broadcast over C). The backward needs only y for ELU's derivative (y > 0 where the
// input was; else ELU' = y + 1).
//
// Why: XLA:CPU runs this as ~8 loop fusions and reductions per norm, forward and backward, each reading the
// activation from memory and each on one thread. Here each image's activation (200 KB at 28x28x64) is read once
// into the cache and worked on there, one image per OpenMP thread: NCSN's MNIST training step 1.12x faster
// (cards/ncsn-bench.md, "Stop 27"). Sums accumulate in double. The library is compiled for the building machine's
// CPU with OpenMP where the compiler takes -march=native -fopenmp (else portable, one thread; zoo/_onednn/_build.py).

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr float kEps = 1e-5f;

// expm1(x) for x <= 0 (ELU's negative side; relative error ~1e-7), branch-free so that loops vectorise.
inline float Expm1Neg(float x) {
  x = x < -87.0f ? -87.0f : x;
  const float n = std::nearbyint(x * 1.44269504088896341f);
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;  // x - n ln2, in two parts (Cody-Waite)
  float p = 2.48015873e-5f;  // expm1(r) = r + r^2 (1/2 + r/6 + ... + r^6/8!), |r| <= ln2 / 2
  p = p * r + 1.98412698e-4f;
  p = p * r + 1.38888889e-3f;
  p = p * r + 8.33333333e-3f;
  p = p * r + 4.16666667e-2f;
  p = p * r + 1.66666667e-1f;
  p = p * r + 0.5f;
  const float em1 = r + r * r * p;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float two_n;
  std::memcpy(&two_n, &bits, sizeof two_n);
  return two_n * em1 + (two_n - 1.0f);  // expm1(x) = 2^n expm1(r) + 2^n - 1: exact at n = 0
}

// (images, pixels, channels) of an (N, H, W, C) buffer.
struct Dims {
  int64_t n, p, c;
};

Dims Shape(ffi::Span<const int64_t> d) { return {d[0], d[1] * d[2], d[3]}; }

// One image's stats (header): mu, s, u, t each C floats.
void Stats(const float* x, int64_t p, int64_t c, float* mu, float* s, float* u, float* t) {
  std::vector<double> acc(c, 0.0);
  for (int64_t i = 0; i < p; ++i)
    for (int64_t k = 0; k < c; ++k) acc[k] += x[i * c + k];
  for (int64_t k = 0; k < c; ++k) mu[k] = static_cast<float>(acc[k] / p), acc[k] = 0.0;
  for (int64_t i = 0; i < p; ++i)
    for (int64_t k = 0; k < c; ++k) {
      const double d = x[i * c + k] - mu[k];
      acc[k] += d * d;
    }
  double mean = 0.0;
  for (int64_t k = 0; k < c; ++k) s[k] = 1.0f / std::sqrt(static_cast<float>(acc[k] / p) + kEps), mean += mu[k];
  mean /= c;
  double v = 0.0;
  for (int64_t k = 0; k < c; ++k) u[k] = static_cast<float>(mu[k] - mean), v += double(u[k]) * u[k];
  const float tt = 1.0f / std::sqrt(static_cast<float>(v / (c - 1)) + kEps);
  for (int64_t k = 0; k < c; ++k) t[k] = tt;
}

ffi::Error Forward(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> gamma, ffi::Buffer<ffi::F32> alpha,
                   ffi::Buffer<ffi::F32> beta, ffi::ResultBuffer<ffi::F32> y, ffi::ResultBuffer<ffi::F32> stats,
                   bool elu) {
  const Dims d = Shape(x.dimensions());
  const int64_t p = d.p, c = d.c;
  const float *X = x.typed_data(), *G = gamma.typed_data(), *A = alpha.typed_data(), *B = beta.typed_data();
  float *Y = y->typed_data(), *S = stats->typed_data();
  std::lock_guard<std::mutex> one_at_a_time(zoo_native::OneAtATime());
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < d.n; ++n) {
    const float* xn = X + n * p * c;
    float* yn = Y + n * p * c;
    float *mu = S + n * 4 * c, *s = mu + c, *u = mu + 2 * c, *t = mu + 3 * c;
    Stats(xn, p, c, mu, s, u, t);
    std::vector<float> scale(c), shift(c);  // y = act(x * scale + shift)
    for (int64_t k = 0; k < c; ++k) {
      const float g = G[n * c + k];
      scale[k] = g * s[k];
      shift[k] = -mu[k] * scale[k] + g * A[n * c + k] * u[k] * t[k] + B[n * c + k];
    }
    const float *sc = scale.data(), *sh = shift.data();
    for (int64_t i = 0; i < p; ++i) {
      const float* xi = xn + i * c;
      float* yi = yn + i * c;
      if (elu) {
        for (int64_t k = 0; k < c; ++k) {
          const float z = xi[k] * sc[k] + sh[k];
          yi[k] = z > 0.0f ? z : Expm1Neg(z);
        }
      } else {
        for (int64_t k = 0; k < c; ++k) yi[k] = xi[k] * sc[k] + sh[k];
      }
    }
  }
  return ffi::Error::Success();
}

// The gradient through ELU (from its output y), or dy itself.
inline float Through(bool elu, float y, float dy) { return elu ? (y > 0.0f ? dy : dy * (y + 1.0f)) : dy; }

ffi::Error Backward(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> y, ffi::Buffer<ffi::F32> stats,
                    ffi::Buffer<ffi::F32> gamma, ffi::Buffer<ffi::F32> alpha, ffi::Buffer<ffi::F32> dy,
                    ffi::ResultBuffer<ffi::F32> dx, ffi::ResultBuffer<ffi::F32> dgamma,
                    ffi::ResultBuffer<ffi::F32> dalpha, ffi::ResultBuffer<ffi::F32> dbeta, bool elu) {
  const Dims d = Shape(x.dimensions());
  const int64_t p = d.p, c = d.c;
  const float *X = x.typed_data(), *Y = y.typed_data(), *S = stats.typed_data(), *G = gamma.typed_data(),
              *A = alpha.typed_data(), *DY = dy.typed_data();
  float *DX = dx->typed_data(), *DG = dgamma->typed_data(), *DA = dalpha->typed_data(), *DB = dbeta->typed_data();
  std::lock_guard<std::mutex> one_at_a_time(zoo_native::OneAtATime());
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < d.n; ++n) {
    const int64_t off = n * p * c;
    const float *xn = X + off, *yn = Y + off, *dyn = DY + off, *g = G + n * c, *a = A + n * c;
    const float *mu = S + n * 4 * c, *s = mu + c, *u = mu + 2 * c, t = mu[3 * c];
    // Per channel: s1 = sum dz, s2 = sum dz x_hat (dz: the gradient at the norm's output).
    std::vector<float> s1(c, 0.0f), s2(c, 0.0f);
    float *S1 = s1.data(), *S2 = s2.data();
    for (int64_t i = 0; i < p; ++i) {
      const float *xi = xn + i * c, *yi = yn + i * c, *gi = dyn + i * c;
      for (int64_t k = 0; k < c; ++k) {
        const float dz = Through(elu, yi[k], gi[k]);
        S1[k] += dz;
        S2[k] += dz * ((xi[k] - mu[k]) * s[k]);
      }
    }
    // Through mu_tilde = u t to mu (the JAX reference: zoo/_onednn/_cin.py, `_backward_one`).
    double qu = 0.0, mean_du = 0.0;
    for (int64_t k = 0; k < c; ++k) qu += double(g[k] * a[k] * S1[k]) * u[k];
    std::vector<float> du(c);
    for (int64_t k = 0; k < c; ++k) {
      du[k] = t * (g[k] * a[k] * S1[k]) - t * t * t * u[k] * static_cast<float>(qu / (c - 1));
      mean_du += du[k];
    }
    mean_du /= c;
    // dx = gs dz - x_hat gs s2 / p + (d_mu - gs s1) / p, with x_hat = (x - mu) s.
    std::vector<float> c1(c), c2(c), c3(c);
    const float inv_p = 1.0f / p;
    for (int64_t k = 0; k < c; ++k) {
      const float gs = g[k] * s[k], mt = u[k] * t;
      c1[k] = gs;
      c2[k] = gs * S2[k] * inv_p * s[k];
      c3[k] = (du[k] - static_cast<float>(mean_du) - gs * S1[k]) * inv_p;
      DG[n * c + k] = S2[k] + a[k] * mt * S1[k];
      DA[n * c + k] = g[k] * mt * S1[k];
      DB[n * c + k] = S1[k];
    }
    const float *C1 = c1.data(), *C2 = c2.data(), *C3 = c3.data();
    float* dxn = DX + off;
    for (int64_t i = 0; i < p; ++i) {
      const float *xi = xn + i * c, *yi = yn + i * c, *gi = dyn + i * c;
      float* o = dxn + i * c;
      for (int64_t k = 0; k < c; ++k) o[k] = C1[k] * Through(elu, yi[k], gi[k]) - (xi[k] - mu[k]) * C2[k] + C3[k];
    }
  }
  return ffi::Error::Success();
}

}  // namespace

using F32 = ffi::Buffer<ffi::F32>;

XLA_FFI_DEFINE_HANDLER_SYMBOL(zoo_cin_fwd, Forward,
                              ffi::Ffi::Bind().Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>()  // x, gamma, alpha, beta
                                  .Ret<F32>().Ret<F32>()  // y, stats
                                  .Attr<bool>("elu"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(zoo_cin_bwd, Backward,
                              ffi::Ffi::Bind().Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>()
                                  .Ret<F32>().Ret<F32>().Ret<F32>().Ret<F32>()  // dx, dgamma, dalpha, dbeta
                                  .Attr<bool>("elu"));
