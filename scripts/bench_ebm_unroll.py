"""ResNet EBM GWG chains on XLA:CPU: equinox convolutions (before) against `zoo.nn.Conv2d`
(after), each as one `lax.scan` of the shared driver and as straight-line code.

Before: XLA:CPU's `ConvCanonicalization` pass only visits a module's entry computation, so
the NCHW convolutions of `equinox.nn.Conv2d`, and every input-gradient convolution, run on
the naive emitter inside a `lax.scan` body (see `zoo/_conv.py`, and
`scripts/xla_conv_in_loop_repro.py` for a minimal reproducer). The EBM used to work around it
by unrolling PCD's chains and running long chains (sampling, AIS) as a host loop of jitted
10-step chunks. After: the network's convolutions are canonical NHWC/HWIO with a custom JVP,
and every chain is one `lax.scan`.

Times, in one run, ``--steps`` GWG transitions of ``--chains`` chains of the pure ResNet EBM
network (the `ebm/resnet-binarized-mnist` preset, fresh weights), with both convolution kinds (same
weights), each variant jitted; reports compile time and the median of ``--reps`` timed runs, and checks that all
variants reach the same states (same keys, same chain).

    nice -n 10 python scripts/bench_ebm_unroll.py                        # one PCD update: 32 x 10 steps
    nice -n 10 python scripts/bench_ebm_unroll.py --steps 40 --chains 100  # the paper's PCD update
"""

from __future__ import annotations

import argparse
import json
import os
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import zoo
import zoo.data
import zoo.ebm
from zoo import samplers
from zoo.nn import Conv2d


class _EquinoxHWC(eqx.Module):
    """An `equinox.nn.Conv2d` behind `zoo.nn.Conv2d`'s channels-last entry point `hwc`, which the
    network calls: transposes to (C, H, W) and back around the NCHW convolution, as before the fix."""

    conv: eqx.nn.Conv2d

    def hwc(self, x):
        return jnp.transpose(self.conv(jnp.transpose(x, (2, 0, 1))), (1, 2, 0))


def with_equinox_convs(model):
    """The same network with every `zoo.nn.Conv2d` replaced by an `equinox.nn.Conv2d`
    holding the same weights: the code before the fix."""

    def swap(m):
        if not isinstance(m, Conv2d):
            return m
        o, i, k, _ = m.weight.shape
        conv = eqx.nn.Conv2d(i, o, k, stride=m.stride[0], padding=m.padding[0][0], use_bias=m.bias is not None,
                             key=jax.random.key(0))
        return _EquinoxHWC(eqx.tree_at(lambda c: (c.weight, c.bias), conv, (m.weight, m.bias)))

    return jax.tree_util.tree_map(swap, model, is_leaf=lambda m: isinstance(m, Conv2d))


@eqx.filter_jit
def chain(model, x0, key, num_steps, unroll):
    return samplers.run(model.train_sampler(), model.target(), x0, num_steps=num_steps, key=key, batched=True,
                        unroll=unroll).final


def chunked(model, x0, key, num_steps, chunk=10):
    """The removed CPU workaround: a host loop over jitted chunks of `chunk` unrolled steps."""
    x = x0
    for i, start in enumerate(range(0, num_steps, chunk)):
        n = min(chunk, num_steps - start)
        x = chain(model, x, jax.random.fold_in(key, i), n, n)
    return x


def timed(fn, reps):
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn())
    compile_s = time.perf_counter() - t0
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return compile_s, float(np.median(times)), np.asarray(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--chains", type=int, default=32)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--json", default=None)
    args = p.parse_args()

    # The network of the pure ResNet EBM (preset ebm/resnet-binarized-mnist: 16 channels, 4 blocks), fresh weights
    # with a data-mean base (the speed does not depend on the weights; the bundled ebm-gwg-binarized-mnist is now
    # a ResNet x RBM product, whose RBM term would add its matrix products to every step).
    cfg = zoo.ebm.ResNetEBMConfig(channels=16, num_blocks=2)
    new = cfg.build(key=jax.random.key(1)).with_base(np.asarray(zoo.data.load("binarized_mnist", "train").x[:10000]))
    old = with_equinox_convs(new)
    key = jax.random.key(0)
    x0 = jax.random.bernoulli(key, jax.nn.sigmoid(new.base_logits)[None, :], (args.chains, new.dim))
    x0 = x0.astype(jnp.float32)
    variants = [
        ("before: equinox convs, lax.scan", lambda: chain(old, x0, key, args.steps, 1)),
        ("before: equinox convs, straight-line", lambda: chain(old, x0, key, args.steps, args.steps)),
        ("after:  zoo.nn,    lax.scan", lambda: chain(new, x0, key, args.steps, 1)),
        ("after:  zoo.nn,    straight-line", lambda: chain(new, x0, key, args.steps, args.steps)),
    ]
    if args.steps > 10:
        variants.insert(2, ("before: host loop of 10-step chunks", lambda: chunked(old, x0, key, args.steps)))
    rows, finals = [], []
    for name, fn in variants:
        c, t, out = timed(fn, args.reps)
        rows.append({"variant": name, "compile_s": c, "run_s": t})
        finals.append(out)
    transitions = args.steps * args.chains
    scan_before, scan_after = rows[0]["run_s"], rows[-2]["run_s"]
    print(f"ResNet EBM ({zoo.num_params(new):,} params), {args.chains} chains x {args.steps} GWG steps, "
          f"{jax.devices()[0].platform}, load average {os.getloadavg()[0]:.1f}")
    for r in rows:
        r["chain_steps_per_s"] = transitions / r["run_s"]
        print(f"  {r['variant']:38s} compile {r['compile_s']:6.1f} s  run {r['run_s'] * 1e3:8.1f} ms  "
              f"{r['chain_steps_per_s']:8.0f} chain-steps/s")
    print(f"  lax.scan speed-up, after / before: {scan_before / scan_after:.1f}x; after, scan vs straight-line: "
          f"{rows[-1]['run_s'] / scan_after:.2f}x")
    same = [bool(np.array_equal(finals[-1], f)) for f in finals]
    print(f"  identical final states across variants: {same}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "rows": rows, "scan_speedup": scan_before / scan_after}, f, indent=1)


if __name__ == "__main__":
    main()
