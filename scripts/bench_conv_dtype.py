"""Does bfloat16 make XLA:CPU's convolutions faster here? A 3x3 NHWC convolution (the NCSN v1 shapes: 64 channels
at 28x28, batch 32; 128 channels at 32x32, batch 16), forward and forward + both gradients, in float32 and in
bfloat16, compiled with the options zoo's convolutional models use (`zoo._conv.conv_compiler_options`: XLA's own
convolution kernels) and, with ``--xla-defaults``, with XLA's defaults (YNNPACK fusions) too. Best of ``--repeats``
calls after a warm-up; GFLOP/s counts 2 * B * H * W * Cin * Cout * 9 per convolution (x3 with the gradients).

    python scripts/bench_conv_dtype.py --xla-defaults
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
from bench_ncsn import best_time  # best of `repeats` calls after a warm-up

from zoo._conv import conv_compiler_options


def conv(x, w):
    return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def loss(w, x):
    return jnp.sum(jnp.square(conv(x, w).astype(jnp.float32)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--xla-defaults", action="store_true", help="also compile with XLA's default options")
    args = p.parse_args()
    settings = {"zoo options": dict(conv_compiler_options())}
    if args.xla_defaults:
        settings["XLA defaults"] = {}
    print(f"{jax.devices()[0].device_kind}, JAX {jax.__version__}; best of {args.repeats}")
    for label, opts in settings.items():
        for c, hw, b in [(64, 28, 32), (128, 32, 16)]:
            row = {}
            for dt in (jnp.float32, jnp.bfloat16):
                x = jax.random.normal(jax.random.key(0), (b, hw, hw, c)).astype(dt)
                w = jax.random.normal(jax.random.key(1), (3, 3, c, c)).astype(dt)
                fwd = jax.jit(conv).lower(x, w).compile(opts)
                grad = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(w, x).compile(opts)
                flops = 2 * b * hw * hw * c * c * 9
                t_fwd, t_grad = best_time(fwd, x, w, repeats=args.repeats), best_time(grad, w, x, repeats=args.repeats)
                row[dt.__name__] = (t_fwd, t_grad)
                print(f"{label}, {c} channels {hw}x{hw} batch {b}, {dt.__name__}: forward {t_fwd * 1e3:.2f} ms "
                      f"({flops / t_fwd / 1e9:.0f} GFLOP/s), forward + gradients {t_grad * 1e3:.2f} ms "
                      f"({3 * flops / t_grad / 1e9:.0f} GFLOP/s)")
            f32, bf16 = row["float32"], row["bfloat16"]
            print(f"  bfloat16 speed / float32 speed: forward {f32[0] / bf16[0]:.2f}x, with gradients "
                  f"{f32[1] / bf16[1]:.2f}x")


if __name__ == "__main__":
    main()
