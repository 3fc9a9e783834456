"""Minimal reproducers: three convolution-gradient forms that XLA:CPU (and JAX) run far below the matmul roof.

Found profiling the GWG paper's ResNet EBM (issue #15; `zoo/_conv.py` works around all three). Each case times
the slow form against an equivalent fast one on the same data (one jitted function each, min of ``--reps`` runs)
and prints both with the numbers' maximum difference:

1. The input gradient of a stride-2 convolution, as autodiff writes it inside a loop body: a convolution of the
   zero-dilated cotangent (``lhs_dilation=2``) that XLA:CPU neither decomposes nor hands to its fast (YNNPACK)
   kernels: 4x the multiply-adds, on the slow path. Equivalent: one stride-1 canonical convolution per input
   phase (1x1, 1x2, 2x1 and 2x2 taps for a 3x3 kernel), interleaved.
2. A convolution with one output channel (the input gradient of a network's first layer on 1-channel images):
   the fast kernels run it at a few GFLOP/s. Equivalent: one matmul against the taps and a sum of shifted slices.
3. A `jax.custom_vjp` convolution differentiated with respect to its weights through `jax.vmap` (the usual
   ``grad(mean(vmap(f)))`` of a loss): JAX batches the backward rule, so the weight cotangent is computed per
   example (a grouped convolution with batch x channels groups) and summed afterwards. Equivalent: a custom JVP,
   which is batched before it is transposed, so the weight gradient is one convolution over the whole batch.

    python scripts/xla_conv_grad_repro.py
"""

from __future__ import annotations

import argparse
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np


DN = ("NHWC", "HWIO", "NHWC")


def conv(x, w, s=1, pad=1):
    return jax.lax.conv_general_dilated(x, w, (s, s), ((pad, pad), (pad, pad)), dimension_numbers=DN)


def best(fn, args, reps):
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t)
    return min(times)


def report(title, flops, slow, fast, args, reps):
    ts, tf = best(slow, args, reps), best(fast, args, reps)
    diff = float(np.max(np.abs(np.asarray(slow(*args)) - np.asarray(fast(*args)))))
    print(f"{title}\n  slow form {ts * 1e3:8.2f} ms ({flops / ts / 1e9:6.1f} GFLOP/s)   equivalent {tf * 1e3:8.2f} ms "
          f"({flops / tf / 1e9:6.1f} GFLOP/s)   {ts / tf:5.1f}x   max |difference| {diff:.1e}")


def case_stride2(n, c, reps):
    """3x3 stride-2 pad-1 convolution on 28x28: the input gradient inside a fori_loop."""
    key = jax.random.key(0)
    x = jax.random.normal(key, (n, 28, 28, c))
    w = 0.05 * jax.random.normal(jax.random.key(1), (3, 3, c, c))
    g = conv(x, w, 2)

    def autodiff(g):
        return jax.vjp(lambda x_: conv(x_, w, 2), x)[1](g)[0]

    def phases(g):
        wt = jnp.swapaxes(w, 2, 3)  # (kh, kw, co, ci); per phase the taps that reach it, flipped
        sub = {0: (wt[1:2], (0, 0)), 1: (wt[2::-2], (0, 1))}  # rows 2p: tap 1; rows 2p+1: taps 2, 0
        parts = []
        for a in (0, 1):
            for b in (0, 1):
                k = jax.lax.optimization_barrier(sub[a][0][:, (slice(1, 2) if b == 0 else slice(2, None, -2))])
                parts.append(jax.lax.conv_general_dilated(g, k, (1, 1), (sub[a][1], sub[b][1]), dimension_numbers=DN))
        return jnp.stack(parts).reshape(2, 2, n, 14, 14, c).transpose(2, 3, 0, 4, 1, 5).reshape(n, 28, 28, c)

    def looped(f):  # three dependent calls in a while body, as in a sampler's chain
        return jax.jit(lambda g: jax.lax.fori_loop(0, 3, lambda i, acc: acc + f(g * (1.0 + i)), jnp.zeros_like(x)))

    flops = 3 * 2 * n * 14 * 14 * c * c * 9
    report(f"1. input gradient of a 3x3 stride-2 convolution, {n} x 28x28x{c}, 3 calls in a fori_loop",
           flops, looped(autodiff), looped(phases), (g,), reps)


def case_one_channel(n, c, reps):
    """The input gradient of a 1 -> c channel 3x3 convolution: a c -> 1 convolution."""
    g = jax.random.normal(jax.random.key(0), (n, 28, 28, c))
    w = jax.random.normal(jax.random.key(1), (3, 3, c, 1))  # flipped, in/out-swapped kernel

    def as_conv(g):
        return conv(g, w)

    def as_matmul(g):
        taps = (g.reshape(-1, c) @ w[::-1, ::-1, :, 0].reshape(9, c).T).reshape(n, 28, 28, 3, 3)
        out = 0.0
        for i in range(3):
            for j in range(3):
                out = out + jnp.pad(taps[..., i, j], ((0, 0), (i, 2 - i), (j, 2 - j)))
        return out[:, 1:29, 1:29, None]

    report(f"2. 3x3 convolution with one output channel, {n} x 28x28x{c} -> 1", 2 * n * 784 * c * 9,
           jax.jit(as_conv), jax.jit(as_matmul), (g,), reps)


def case_custom_vjp_weights(n, c, reps):
    """grad(mean(vmap(f))) wrt the weights of a custom-VJP vs a custom-JVP convolution."""

    @jax.custom_vjp
    def conv_vjp(x, w):
        return conv(x, w)

    def fwd(x, w):
        return conv(x, w), (x, w)

    def bwd(res, g):
        x, w = res
        return jax.vjp(conv, x, w)[1](g)

    conv_vjp.defvjp(fwd, bwd)

    @jax.custom_jvp
    def conv_jvp(x, w):
        return conv(x, w)

    @functools.partial(conv_jvp.defjvp, symbolic_zeros=True)
    def _(primals, tangents):
        (x, w), (dx, dw) = primals, tangents
        parts = [conv(t, w) if i == 0 else conv(x, t) for i, t in enumerate((dx, dw))
                 if not isinstance(t, jax.custom_derivatives.SymbolicZero)]
        return conv(x, w), functools.reduce(jnp.add, parts) if parts else jnp.zeros_like(conv(x, w))

    x = jax.random.normal(jax.random.key(0), (n, 14, 14, c))
    w = 0.05 * jax.random.normal(jax.random.key(1), (3, 3, c, c))

    def weight_grad(f):
        return jax.jit(jax.grad(lambda w: jnp.mean(jax.vmap(lambda xi: jnp.sum(jnp.tanh(f(xi[None], w))))(x))))

    report(f"3. weight gradient of grad(mean(vmap(conv))), {n} x 14x14x{c}, custom VJP vs custom JVP",
           2 * 2 * n * 196 * c * c * 9, weight_grad(conv_vjp), weight_grad(conv_jvp), (w,), reps)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--reps", type=int, default=5)
    args = p.parse_args()
    print(f"jax {jax.__version__}, {jax.devices()[0].platform}; each: the slow form, then an equivalent")
    case_stride2(args.batch, args.channels, args.reps)
    case_one_channel(args.batch, args.channels, args.reps)
    case_custom_vjp_weights(args.batch, args.channels, args.reps)


if __name__ == "__main__":
    main()
