"""Minimal reproducer: XLA:CPU convolutions inside a while loop miss the fast path.

`xla::cpu::ConvCanonicalization` (xla/service/cpu/conv_canonicalization.cc) rewrites a
convolution that is not NHWC/HWIO/NHWC into that form, but it walks only
``module->entry_computation()``. The same convolution inside a while body (`lax.scan`,
`fori_loop`) keeps its layout and is emitted as a naive loop nest. This script times one
gradient step of a one-layer NCHW convolution network, repeated 10 times, as straight-line
code and as a `fori_loop`, and prints the dimension labels of the compiled convolutions; then
the same with `zoo.nn.Conv2d` (canonical form, custom JVP), which is fast in both.

    python scripts/xla_conv_in_loop_repro.py
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp


STEPS = 10


def make(conv):
    grad = jax.grad(lambda x: jnp.sum(jax.nn.silu(conv(x))))

    def straight(x):
        for _ in range(STEPS):
            x = x + 1e-3 * jax.vmap(grad)(x)
        return x

    def loop(x):
        return jax.lax.fori_loop(0, STEPS, lambda i, x: x + 1e-3 * jax.vmap(grad)(x), x)

    return {"straight-line": jax.jit(straight), "fori_loop": jax.jit(loop)}


def nchw_conv(w):
    def conv(x):  # one example (C, H, W), as equinox.nn.Conv2d writes it
        return jax.lax.conv_general_dilated(x[None], w, (2, 2), ((1, 1), (1, 1)),
                                            dimension_numbers=("NCHW", "OIHW", "NCHW"))[0]
    return conv


def main() -> None:
    from zoo.nn import Conv2d

    ours = Conv2d(16, 16, 3, stride=2, padding=1, key=jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (32, 16, 28, 28))
    print(f"jax {jax.__version__}, {jax.devices()[0].platform}; 32 x (16, 28, 28), 3x3 stride 2, {STEPS} steps")
    for name, conv in (("lax NCHW/OIHW", nchw_conv(ours.weight)), ("zoo.nn.Conv2d", ours)):
        for how, fn in make(conv).items():
            labels = sorted({line.split("dim_labels=")[1].split(",")[0]
                             for line in fn.lower(x).compile().as_text().splitlines() if " convolution(" in line})
            fn(x).block_until_ready()
            times = []
            for _ in range(5):
                t = time.perf_counter()
                fn(x).block_until_ready()
                times.append(time.perf_counter() - t)
            print(f"  {name:18s} {how:14s} {sorted(times)[2] * 1e3:8.1f} ms   convolutions: {', '.join(labels)}")


if __name__ == "__main__":
    main()
