"""NCSN speed on this machine: training steps/s and sampling images/s for a config and
batch, achieved FLOP/s (XLA's cost analysis) next to a measured f32 matmul peak, and the
ratio to the official PyTorch code's times QUOTED in ../shared/reference/notes_ncsn.md
(measured there on a 2-core machine like this one; not re-measured here).

    python scripts/bench_ncsn.py --dataset cifar10 --ngf 128 --batch 16 --sample-batch 16
    python scripts/bench_ncsn.py --dataset mnist --ngf 64 --batch 32 --sample-batch 16
    python scripts/bench_ncsn.py --dataset mnist --ngf 16 --batch 32 --variant v1-unconditional   # the CPU preset
    python scripts/bench_ncsn.py --dataset cifar10 --variant ncsnv2 --batch 16   # the NCSNv2 CIFAR-10 network
    python scripts/bench_ncsn.py --dataset mnist --devices 2   # also data-parallel over 2 CPU devices

Layout is NHWC throughout. Everything below is measured in this one run. With
``--devices N`` on CPU the process splits the host into N XLA devices and also times the
same steps with the batch sharded over them (what `zoo.fit` does with several devices):
XLA:CPU runs a convolution on all cores but most elementwise and reduction kernels on one,
so one program per core keeps both busy.
"""

from __future__ import annotations

import argparse
import os
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec

import zoo
from zoo import samplers
from zoo.ncsn import NCSNConfig


# Official PyTorch (ermongroup/ncsn) times from the reference notes, fp32, 2 cores, quiet machine.
QUOTED = {
    # (dataset, ngf): {train batch: s/step, langevin batch: s/step}
    ("cifar10", 128): {"train": (16, 5.39), "langevin": (16, 1.89)},
    ("mnist", 64): {"train": (32, 2.44), "langevin": (16, 0.50)},
}
QUOTED_ROOF = 186e9  # the notes' PyTorch matmul roof on that machine


def _time(fn, *args, repeats: int) -> float:
    out = fn(*args)
    jax.block_until_ready(out)  # compile + warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - t)
    return best


def _flops(jitted, *args) -> float | None:
    try:
        cost = jitted.lower(*args).compile().cost_analysis()
        if isinstance(cost, list):
            cost = cost[0]
        return float(cost["flops"])
    except Exception:  # cost analysis is best effort on some backends
        return None


def numpy_matmul_peak(n: int = 2048, repeats: int = 5) -> float:
    a = np.random.default_rng(0).random((n, n), np.float32)
    return 2 * n**3 / _time(np.matmul, a, a, repeats=repeats)


def matmul_peak(n: int = 2048, repeats: int = 5) -> float:
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    f = jax.jit(lambda a: a @ a)
    return 2 * n**3 / _time(f, a, repeats=repeats)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", choices=["mnist", "cifar10"], default="cifar10")
    p.add_argument("--ngf", type=int, default=None, help="default: the paper's (64 MNIST, 128 CIFAR-10)")
    p.add_argument("--variant", choices=["v1", "v1-unconditional", "v2", "ncsnv2"], default="v1",
                   help="the network: NCSN's RefineNet (v1; v1-unconditional, formerly v2) or the NCSNv2 network")
    p.add_argument("--batch", type=int, default=None, help="training batch (default: the quoted one)")
    p.add_argument("--sample-batch", type=int, default=16)
    p.add_argument("--langevin-steps", type=int, default=5, help="Langevin steps per timed scan")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--devices", type=int, default=1, help="also time data-parallel over N CPU devices")
    args = p.parse_args(argv)
    if args.devices > 1:
        jax.config.update("jax_num_cpu_devices", args.devices)  # before the CPU backend starts
    size, ch = (28, 1) if args.dataset == "mnist" else (32, 3)
    ngf = args.ngf or (64 if args.dataset == "mnist" else 128)
    quoted = QUOTED.get((args.dataset, ngf)) if args.variant == "v1" else None
    batch = args.batch or (quoted["train"][0] if quoted else 32)
    cfg = NCSNConfig(image_size=size, channels=ch, ngf=ngf, variant=args.variant, steps_per_level=100)
    model = cfg.build(key=jax.random.key(0))
    n_params = sum(x.size for x in jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array)))
    print(f"NCSN {args.variant} {args.dataset} {size}x{size}x{ch}, ngf {ngf}, {n_params / 1e6:.2f} M params; "
          f"{jax.devices()[0].device_kind} ({os.cpu_count()} cores visible), JAX {jax.__version__}, NHWC, fp32")

    print(f"load average (1, 5, 15 min): {os.getloadavg()}; timings are only comparable on a quiet machine")
    peak = matmul_peak()
    print(f"matmul peak (2048^2 f32, best of 5): {peak / 1e9:.1f} GFLOP/s")
    print(f"numpy (BLAS) f32 matmul 2048^2: {numpy_matmul_peak() / 1e9:.1f} GFLOP/s; the reference notes measured a "
          f"{QUOTED_ROOF / 1e9:.0f} GFLOP/s roof with PyTorch on the machine of the quoted times (a calibration: the "
          "quoted times are only comparable when this machine's BLAS is about as fast)")

    opt = optax.adam(1e-3)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    opt_state = opt.init(params)

    @jax.jit
    def train_step(params, opt_state, x, key):
        def loss_fn(p):
            return eqx.combine(p, static).loss(x, None, key=key)[0]

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = opt.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state, loss

    x = jax.random.uniform(jax.random.key(1), (batch, size, size, ch))
    k = jax.random.key(2)
    t_train = _time(train_step, params, opt_state, x, k, repeats=args.repeats)
    f_train = _flops(train_step, params, opt_state, x, k)
    line = f"train step, batch {batch}: {t_train:.3f} s ({1 / t_train:.3f} steps/s, {batch / t_train:.1f} img/s)"
    if f_train:
        rate = f_train / t_train
        line += f"; {f_train / 1e9:.1f} GFLOP/step -> {rate / 1e9:.1f} GFLOP/s = {rate / peak:.0%} of peak"
    print(line)
    t_train_dp = None
    if args.devices > 1:
        ndev = len(jax.devices())
        if batch % ndev:
            raise SystemExit(f"--batch {batch} is not divisible by --devices {ndev}")
        mesh = zoo.data_mesh()
        rep, shard = NamedSharding(mesh, PartitionSpec()), NamedSharding(mesh, PartitionSpec("data"))
        args_dp = (jax.device_put(params, rep), jax.device_put(opt_state, rep), jax.device_put(x, shard), k)
        t_train_dp = _time(train_step, *args_dp, repeats=args.repeats)
        t_one = _time(train_step, params, opt_state, x, k, repeats=args.repeats)  # again, interleaved
        t_train = min(t_train, t_one)
        print(f"train step, batch {batch} data-parallel over {ndev} CPU devices: {t_train_dp:.3f} s "
              f"({t_train / t_train_dp:.2f}x the single-device step, best of both single-device timings)")

    nb, ns = args.sample_batch, args.langevin_steps
    sampler = samplers.AnnealedLangevin.v1(cfg.sigmas, steps_per_level=ns, step_lr=2e-5)

    @jax.jit
    def langevin(params, x0, key):
        m = eqx.combine(params, static)
        return samplers.run(sampler, m.score, x0, num_steps=ns, key=key, batched=True).final

    x0 = jax.random.uniform(jax.random.key(3), (nb, size, size, ch))
    t_lan = _time(langevin, params, x0, k, repeats=args.repeats) / ns
    # XLA's cost analysis counts a loop body once, so count one batched score evaluation instead.
    score_batch = jax.jit(lambda p, x: jax.vmap(eqx.combine(p, static).score)(x, jnp.zeros(x.shape[0], jnp.int32)))
    f_lan = _flops(score_batch, params, x0)
    full = 10 * 100  # the paper's chain: L = 10 levels x T = 100
    line = (f"Langevin step (one scan of {ns}), batch {nb}: {t_lan:.3f} s/step; a 1000-step paper chain gives "
            f"{nb / (t_lan * full):.4f} img/s")
    if f_lan:
        rate = f_lan / t_lan
        line += f"; {f_lan / 1e9:.1f} GFLOP/step -> {rate / 1e9:.1f} GFLOP/s = {rate / peak:.0%} of peak"
    print(line)
    t_lan_dp = None
    if args.devices > 1 and nb % len(jax.devices()) == 0:
        x0_dp = jax.device_put(x0, shard)
        t_lan_dp = _time(langevin, jax.device_put(params, rep), x0_dp, k, repeats=args.repeats) / ns
        t_lan = min(t_lan, _time(langevin, params, x0, k, repeats=args.repeats) / ns)
        print(f"Langevin step, batch {nb} sharded over {len(jax.devices())} CPU devices: {t_lan_dp:.3f} s/step "
              f"({t_lan / t_lan_dp:.2f}x the single-device step)")

    if quoted is None:
        print("no quoted PyTorch figure for this config (quoted: v1 cifar10 ngf 128, v1 mnist ngf 64)")
        return
    qb, qt = quoted["train"]
    if qb == batch:
        print(f"vs official PyTorch (QUOTED, not re-measured): train {qt:.2f} s/step -> "
              f"ours is {qt / t_train:.2f}x as fast")
        if t_train_dp is not None:
            print(f"vs official PyTorch (QUOTED, not re-measured): train {qt:.2f} s/step -> "
                  f"ours data-parallel over {len(jax.devices())} CPU devices is {qt / t_train_dp:.2f}x as fast")
    qb, ql = quoted["langevin"]
    if qb == nb:
        print(f"vs official PyTorch (QUOTED, not re-measured): Langevin {ql:.2f} s/step -> "
              f"ours is {ql / t_lan:.2f}x as fast")
        if t_lan_dp is not None:
            print(f"vs official PyTorch (QUOTED, not re-measured): Langevin {ql:.2f} s/step -> "
                  f"ours data-parallel is {ql / t_lan_dp:.2f}x as fast")


if __name__ == "__main__":
    main()
