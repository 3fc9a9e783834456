"""NCSN speed on this machine: training steps/s and sampling images/s for a config and
batch, achieved FLOP/s (XLA's cost analysis) next to a measured f32 matmul peak; for the NCSN
v1 configs, the official PyTorch code's times QUOTED in ../shared/reference/notes_ncsn.md
(measured there on a 2-core machine like this one; not re-measured here); for NCSNv2, the
official PyTorch network measured side by side in the same run (``--official``).

    python scripts/bench_ncsn.py --preset ncsnv2/cifar10 --sample-batch 16 --skip-train \
        --official ../ncsnv2        # NCSNv2 CIFAR-10 (ngf 128) vs the official network, side by side

    python scripts/bench_ncsn.py --dataset cifar10 --ngf 128 --batch 16 --sample-batch 16
    python scripts/bench_ncsn.py --dataset mnist --ngf 64 --batch 32 --sample-batch 16
    python scripts/bench_ncsn.py --dataset mnist --ngf 16 --batch 32 --variant v1-unconditional   # the CPU preset
    python scripts/bench_ncsn.py --dataset cifar10 --variant ncsnv2 --batch 16   # the NCSNv2 CIFAR-10 network
    python scripts/bench_ncsn.py --dataset mnist --devices 2   # also data-parallel over 2 CPU devices

With ``--preset ncsnv2/...`` and ``--official PATH`` (a checkout of `ermongroup/ncsnv2`; torch
installed, a benchmark-only dependency in its own environment) the official `models/ncsnv2.py`
network is built from the official ``configs/<dataset>.yml`` (imports unchanged; random init),
its weights are converted to zoo with `zoo.ncsn.from_official` (outputs compared), and one
annealed-Langevin step of both is timed at the config's settings (``n_steps_each``, ``step_lr``,
batch ``--sample-batch``), interleaved round by round (``--repeats`` rounds of
``--langevin-steps`` steps, medians; float32; torch on each of ``--torch-threads`` threads): ours
is `samplers.run` of the model's default sampler, theirs is the official
``anneal_Langevin_dynamics`` (its per-step norms included) over the first noise level.

Layout is NHWC throughout. Everything below is measured in this one run. With
``--devices N`` on CPU the process splits the host into N XLA devices and also times the
same steps with the batch sharded over them (what `zoo.fit` does with several devices):
XLA:CPU runs a convolution on all cores but most elementwise and reduction kernels on one,
so one program per core keeps both busy.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import sys
import tempfile
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


_OFFICIAL_YML = {"cifar10": "cifar10", "celeba64": "celeba", "church64": "church", "bedroom128": "bedroom",
                 "tower128": "tower", "ffhq256": "ffhq"}


def _namespace(d):
    return argparse.Namespace(**{k: _namespace(v) if isinstance(v, dict) else v for k, v in d.items()})


def official_ncsnv2(path: str, preset: str, threads: int):
    """``(torch, net, anneal_Langevin_dynamics, pth)``: the official NCSNv2 network of `preset`'s official config
    (random init, eval mode) and a ``.pth`` file of its state dict; or ``(None, reason)``."""
    try:
        import torch
        import yaml
    except ImportError as e:
        return None, f"{e.name} is not installed (torch is a benchmark-only dependency: use a separate environment)"
    yml = os.path.join(path, "configs", _OFFICIAL_YML.get(preset.split("/")[-1], "?") + ".yml")
    if not os.path.isfile(os.path.join(path, "models", "ncsnv2.py")) or not os.path.isfile(yml):
        return None, f"{path} is not a checkout of ermongroup/ncsnv2 with {os.path.relpath(yml, path)}"
    torch.set_num_threads(threads)
    sys.path.insert(0, os.path.abspath(path))
    try:
        from models import anneal_Langevin_dynamics  # the official modules, unchanged
        from models.ncsnv2 import NCSNv2, NCSNv2Deeper, NCSNv2Deepest
    except Exception as e:  # noqa: BLE001 - any import failure of a foreign checkout is reported, not raised
        return None, f"importing the official modules from {path} failed: {type(e).__name__}: {e}"
    with open(yml) as f:
        config = _namespace(yaml.safe_load(f))
    config.device = torch.device("cpu")
    arch = {"ncsnv2": NCSNv2, "ncsnv2-deeper": NCSNv2Deeper, "ncsnv2-deepest": NCSNv2Deepest}
    torch.manual_seed(0)
    net = arch[zoo.get_preset(preset).config.variant](config).eval()
    pth = os.path.join(tempfile.mkdtemp(prefix="bench_ncsn_"), "checkpoint.pth")
    torch.save(net.state_dict(), pth)  # a bare state dict, as the converter accepts
    return (torch, net, anneal_Langevin_dynamics, pth), None


def interleaved_medians(fns: dict, repeats: int) -> dict:
    """``{name: median seconds}`` of ``fns = {name: (run, setup)}``: each round runs every ``setup()`` (untimed) and
    ``run()`` (timed) once, in turn, so that a change of machine load hits all of them alike."""
    times: dict = {name: [] for name in fns}
    for _ in range(repeats):
        for name, (fn, setup) in fns.items():
            setup()
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: float(np.median(v)) for name, v in times.items()}


def langevin_bench(args, cfg, model, params, static, peak: float, official, official_note: str, threads) -> None:
    """One annealed-Langevin step at the config's settings: ours and (if `official`) the official code's,
    interleaved rounds of ``--langevin-steps`` steps, medians."""
    nb, ns = args.sample_batch, args.langevin_steps
    sampler = model.default_sampler()  # the config's rule: NCSNv2's n_steps_each, step_lr, denoising step

    @functools.partial(jax.jit, compiler_options=dict(model.compiler_options()) or None)  # the model's (zoo._conv)
    def langevin(params, x0, key):
        m = eqx.combine(params, static)
        return samplers.run(sampler, m.score, x0, num_steps=ns, key=key, batched=True).final

    x0 = jax.random.uniform(jax.random.key(3), (nb, cfg.image_size, cfg.image_size, cfg.channels))
    key = jax.random.key(2)
    jax.block_until_ready(langevin(params, x0, key))  # compile + warm-up
    fns = {"zoo": (lambda: jax.block_until_ready(langevin(params, x0, key)), lambda: None)}
    if official is not None:
        torch, net, anneal_langevin, _ = official
        xt = torch.tensor(np.ascontiguousarray(np.asarray(x0).transpose(0, 3, 1, 2)))

        # The official sampler over the first level only: n steps of network + update + its norms. Given only that
        # level, it scales step_lr by (sigma_0 / sigma_0)^2, so step_lr is pre-scaled by (sigma_0 / sigma_L)^2: the
        # very step sizes of the full chain's first level, which ours takes.
        lr0 = cfg.step_lr * float(net.sigmas[0] / net.sigmas[-1]) ** 2

        def theirs(n=ns):
            anneal_langevin(xt, net, net.sigmas[:1], n_steps_each=n, step_lr=lr0, final_only=True, verbose=False,
                            denoise=False)

        def on(t):
            return lambda: torch.set_num_threads(t)

        for t in threads:
            torch.set_num_threads(t)
            theirs(1)  # warm-up at this thread count
            fns[f"official_{t}t"] = (theirs, on(t))
    print(f"Langevin: batch {nb}, {ns} steps per round (level 0 of {len(cfg.sigmas)}, step_lr {cfg.step_lr:g}), "
          f"{args.repeats} interleaved rounds, medians; load average {os.getloadavg()}", flush=True)
    med = {name: t / ns for name, t in interleaved_medians(fns, args.repeats).items()}
    score_batch = jax.jit(lambda p, x: jax.vmap(eqx.combine(p, static).score)(x, jnp.zeros(x.shape[0], jnp.int32)))
    f_lan = _flops(score_batch, params, x0)
    for name, t in med.items():
        line = f"Langevin step, batch {nb}, {name}: {t:.3f} s/step ({nb / t:.2f} img-steps/s)"
        if f_lan:
            line += f"; {f_lan / 1e9:.1f} GFLOP/step -> {f_lan / t / 1e9:.1f} GFLOP/s = {f_lan / t / peak:.0%} of peak"
        print(line)
    official_times = {name: t for name, t in med.items() if name.startswith("official")}
    if official_times:
        best = min(official_times, key=official_times.get)
        print("speed-up of zoo over the official network (official s/step / zoo s/step): " +
              ", ".join(f"{med[name] / med['zoo']:.2f}x vs {name}" for name in official_times) +
              f"; vs the faster official ({best}): {med[best] / med['zoo']:.2f}x")
    print(f"{official_note}\nload average at the end (1, 5, 15 min): {os.getloadavg()} (the CPU is shared)")


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
    p.add_argument("--preset", default=None, help="an NCSN preset (e.g. ncsnv2/cifar10): its network and sampler "
                   "settings replace --dataset / --ngf / --variant")
    p.add_argument("--official", default=None, help="a checkout of ermongroup/ncsnv2 to time side by side "
                   "(NCSNv2 presets)")
    p.add_argument("--torch-threads", default="2,1", help="torch thread counts to time the official network with")
    p.add_argument("--skip-train", action="store_true", help="time sampling only")
    args = p.parse_args(argv)
    try:
        threads = [int(t) for t in args.torch_threads.split(",")]
    except ValueError:
        raise SystemExit(f"--torch-threads wants a comma-separated list like 2,1, got {args.torch_threads!r}") from None
    if args.devices > 1:
        jax.config.update("jax_num_cpu_devices", args.devices)  # before the CPU backend starts
    if args.preset:
        cfg = zoo.get_preset(args.preset).config
        if not isinstance(cfg, NCSNConfig):
            raise SystemExit(f"--preset {args.preset} is not an NCSN preset (see `zoo list --presets 'ncsn*'`)")
        size, ch, ngf, args.variant, args.dataset = cfg.image_size, cfg.channels, cfg.ngf, cfg.variant, args.preset
    else:
        size, ch = (28, 1) if args.dataset == "mnist" else (32, 3)
        ngf = args.ngf or (64 if args.dataset == "mnist" else 128)
        cfg = NCSNConfig(image_size=size, channels=ch, ngf=ngf, variant=args.variant, steps_per_level=100)
    quoted = QUOTED.get((args.dataset, ngf)) if args.variant == "v1" else None
    batch = args.batch or (quoted["train"][0] if quoted else 32)
    model = cfg.build(key=jax.random.key(0))
    official, official_note = None, "official timing skipped: no --official PATH given"
    if args.official and not (args.preset and args.variant.startswith("ncsnv2")):
        official_note = "official timing skipped: --official is for the NCSNv2 presets (--preset ncsnv2/...)"
    elif args.official:
        official, why = official_ncsnv2(args.official, args.preset, threads[0])
        if official is None:
            official_note = f"official timing skipped: {why}"
        else:
            torch, net, _, pth = official
            try:
                model = zoo.ncsn.from_official(pth, weights="raw", config=cfg)  # the official network's weights
            finally:
                shutil.rmtree(os.path.dirname(pth), ignore_errors=True)
            xt = jax.random.uniform(jax.random.key(5), (2, size, size, ch))
            lv = jnp.array([0, len(cfg.sigmas) - 1])
            ours = np.asarray(jax.vmap(model.score)(xt, lv))
            with torch.no_grad():
                theirs = net(torch.tensor(np.asarray(xt).transpose(0, 3, 1, 2)), torch.tensor(np.asarray(lv)))
            theirs = theirs.numpy().transpose(0, 2, 3, 1)
            err = float(np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs)))
            official_note = (f"official: {args.official} (models/ncsnv2.py {type(net).__name__}, configs/"
                             f"{_OFFICIAL_YML[args.preset.split('/')[-1]]}.yml, imports unchanged), torch "
                             f"{torch.__version__} on {' and '.join(map(str, threads))} thread(s), float32; its "
                             f"weights converted to zoo by zoo.ncsn.from_official: max relative difference of the "
                             f"scores {err:.1e}")
            if err > 1e-3:
                raise SystemExit(f"the converted network does not reproduce the official one ({err:.1e})")
    n_params = sum(x.size for x in jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array)))
    print(f"NCSN {args.variant} {args.dataset} {size}x{size}x{ch}, ngf {ngf}, {n_params / 1e6:.2f} M params; "
          f"{jax.devices()[0].device_kind} ({os.cpu_count()} cores visible), JAX {jax.__version__}, NHWC, fp32")
    print(official_note, flush=True)

    print(f"load average (1, 5, 15 min): {os.getloadavg()}; timings are only comparable on a quiet machine")
    peak = matmul_peak()
    print(f"matmul peak (2048^2 f32, best of 5): {peak / 1e9:.1f} GFLOP/s")
    print(f"numpy (BLAS) f32 matmul 2048^2: {numpy_matmul_peak() / 1e9:.1f} GFLOP/s; the reference notes measured a "
          f"{QUOTED_ROOF / 1e9:.0f} GFLOP/s roof with PyTorch on the machine of the quoted times (a calibration: the "
          "quoted times are only comparable when this machine's BLAS is about as fast)")

    opt = optax.adam(1e-3)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    opt_state = opt.init(params)

    @functools.partial(jax.jit, compiler_options=dict(model.compiler_options()) or None)  # as zoo.fit compiles it
    def train_step(params, opt_state, x, key):
        def loss_fn(p):
            return eqx.combine(p, static).loss(x, None, key=key)[0]

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = opt.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state, loss

    x = jax.random.uniform(jax.random.key(1), (batch, size, size, ch))
    k = jax.random.key(2)
    if args.skip_train:
        langevin_bench(args, cfg, model, params, static, peak, official, official_note, threads)
        return
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

    if args.preset:
        langevin_bench(args, cfg, model, params, static, peak, official, official_note, threads)
        return
    nb, ns = args.sample_batch, args.langevin_steps
    sampler = samplers.AnnealedLangevin.v1(cfg.sigmas, steps_per_level=ns, step_lr=2e-5)

    @functools.partial(jax.jit, compiler_options=dict(model.compiler_options()) or None)  # the model's (zoo._conv)
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
