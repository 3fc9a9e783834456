"""NCSN speed on this machine: training steps/s and sampling images/s for a config and
batch, achieved FLOP/s (XLA's cost analysis) next to a measured f32 matmul peak, and with
``--official PATH`` the official PyTorch code measured side by side in the same run: NCSN v1
(`ermongroup/ncsn`, ``--variant v1``) and NCSNv2 (`ermongroup/ncsnv2`, ``--preset ncsnv2/...``).
Without ``--official`` (or without torch) the NCSN v1 configs also print the official times
quoted in ../shared/reference/notes_ncsn.md (measured on another 2-core machine), as a
reference only: labelled "quoted, not measured", and no ratio is computed from them.

    python scripts/bench_ncsn.py --dataset mnist --batch 32 --sample-batch 16 \
        --official ../official/ncsn   # NCSN v1 MNIST (ngf 64) vs the official code, side by side
    python scripts/bench_ncsn.py --dataset cifar10 --batch 16 --sample-batch 16 \
        --official ../official/ncsn   # NCSN v1 CIFAR-10 (ngf 128) vs the official code
    python scripts/bench_ncsn.py --preset ncsnv2/cifar10 --sample-batch 16 --skip-train \
        --official ../ncsnv2        # NCSNv2 CIFAR-10 (ngf 128) vs the official network, side by side

    python scripts/bench_ncsn.py --dataset cifar10 --ngf 128 --batch 16 --sample-batch 16
    python scripts/bench_ncsn.py --dataset mnist --ngf 64 --batch 32 --sample-batch 16
    python scripts/bench_ncsn.py --dataset mnist --ngf 16 --batch 32 --variant v1-unconditional   # the CPU preset
    python scripts/bench_ncsn.py --dataset cifar10 --variant ncsnv2 --batch 16   # the NCSNv2 CIFAR-10 network
    python scripts/bench_ncsn.py --dataset mnist --devices 2   # also data-parallel over 2 CPU devices

``--official PATH`` needs torch and yaml (benchmark-only dependencies, in their own environment)
and leaves the official modules' imports unchanged. The official network is built with random
init (``torch.manual_seed(0)``), its state dict converted to zoo with `zoo.ncsn.from_official`
(``weights="raw"``; the scores must agree to a relative 1e-3), and zoo times those very weights.

* NCSN v1: ``models/cond_refinenet_dilated.py`` ``CondRefineNetDilated`` from the official
  ``configs/anneal.yml`` with ``data.dataset``, ``image_size``, ``channels``, ``model.ngf`` and
  ``num_classes`` of the zoo config timed (MNIST 28x28x1, CIFAR-10 32x32x3; 10 noise levels).
  The training step (batch ``--batch``) is the official anneal runner's: dequantisation, labels,
  ``losses/dsm.py`` ``anneal_dsm_score_estimation`` and its Adam step (``AnnealRunner.get_optimizer``)
  against zoo's jitted loss + gradients + Adam. Sampling is the runner's
  ``AnnealRunner.anneal_Langevin_dynamics`` (called unchanged; where importing the runner module
  fails for want of torchvision / tensorboardX, its class is executed unchanged from the file's
  source) at T = 100, step_lr 2e-5.
* NCSNv2 (``--preset ncsnv2/...``): ``models/ncsnv2.py`` from the official
  ``configs/<dataset>.yml``; sampling is ``models/__init__.py`` ``anneal_Langevin_dynamics`` (its
  per-step norms included) at the config's ``n_steps_each``, ``step_lr``; training is timed for
  zoo only.

Both are timed interleaved round by round (``--repeats`` rounds, medians; float32; torch on
each of ``--torch-threads`` thread counts) and printed with the ratio official s / zoo s. One
annealed-Langevin step is a round of ``--langevin-steps`` steps (batch ``--sample-batch``) over
the first noise level: ours is `samplers.run` of the model's default sampler, theirs the
official function given that level with step_lr pre-scaled to the same step size.

zoo's convolutions run on oneDNN's or XLA's kernels per shape, whichever was timed faster on this machine
(`zoo._onednn`; the header says which is available); ``--xla-convs`` also times zoo's programs traced with XLA's
kernels only, interleaved in the same rounds (rows ``zoo_xla_convs``); ``--bf16`` times the same weights with the
convolutions in bfloat16 (``compute_dtype="bfloat16"``: oneDNN's AMX / AVX512-BF16 kernels where the CPU has them;
rows ``zoo_bf16``); ``--ynn-off`` times the same program compiled with XLA:CPU's YNNPACK fusions all off, where
zoo's options (`zoo._conv.conv_compiler_options`) keep them for reductions (rows ``zoo_ynn_off``). FLOP counts
are XLA's cost analysis of the XLA-only programs (it counts no custom call).

With ``--convs`` (and ``--official``) the network's convolutions are also timed alone on both sides (forward,
input and weight gradients, at the training batch; read off the jaxpr of zoo's batched score), and each side's
training step is split into its convolutions and the rest. With ``--profile`` one more training step of each
side runs under its own profiler (`jax.profiler`, `torch.profiler`) and its op time is printed by kind
(convolutions forward, convolutions backward, everything else): the convolutions as they run inside the step,
where ``--convs`` times them alone. Run single-threaded for per-op times that add up (XLA_FLAGS
``--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1``, ``OMP_NUM_THREADS=1``, ``--torch-threads 1``).

Each ratio official / zoo is printed from the medians and, round by round, from the two timings of the same round
(paired: both met the same state of the machine, whose speed drifts 20-30% between runs here), with their median
and range.

Each round's timed call of a side follows an untimed call of its own (``--primed``, the default;
``--no-primed`` times single calls): training and sampling run steps back to back, while interleaving leaves each
side's memory idle during the other's step. On the test machine (a KVM guest with free page reporting) memory that
stays freed for a while is handed back to the host, and faulting it in again costs several times more: XLA:CPU
frees its per-step scratch (1 GiB for the MNIST training step, zoo/_malloc.py) where PyTorch keeps its memory, so
single interleaved calls charge zoo's steps up to 3 s of system time that back-to-back steps do not pay.

With ``--processes`` the training and Langevin steps are timed again with each side in a process of its own
(this script with ``--worker zoo`` / ``--worker official``, driven by command so that the rounds still interleave):
zoo's process never imports torch, the official one never runs JAX and keeps the C library's allocator settings.

With ``--memory`` the peak resident set size (Linux's ``VmHWM``) of each side's training step and
Langevin round is measured too, each in a fresh process of its own that builds only that side
and runs only that phase (a warm-up and two more calls): framework, weights, compilation and
activations; the process's size right after its imports is printed beside it.

Layout is NHWC throughout. Everything below is measured in this one run. With
``--devices N`` on CPU the process splits the host into N XLA devices and also times the
same steps with the batch sharded over them (what `zoo.fit` does with several devices):
XLA:CPU runs a convolution on all cores but most elementwise and reduction kernels on one,
so one program per core keeps both busy.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.extend.core
import jax.numpy as jnp
import numpy as np
import optax
from _timing import (  # peak_rss_mib: VmHWM, right in a child
    Commanded,
    Medians,
    allocator_note,
    interleaved_medians,
    parse_threads,
    peak_rss_mib,
    reply,
)
from jax.sharding import NamedSharding, PartitionSpec

import zoo
from zoo import samplers
from zoo._conv import YNNPACK_OFF
from zoo._onednn import available as onednn_available, conv as zoo_conv, xla_kernels
from zoo.ncsn import NCSNConfig


# Official PyTorch (ermongroup/ncsn) times from the reference notes, fp32, 2 cores, quiet machine.
QUOTED = {
    # (dataset, ngf): {train batch: s/step, langevin batch: s/step}
    ("cifar10", 128): {"train": (16, 5.39), "langevin": (16, 1.89)},
    ("mnist", 64): {"train": (32, 2.44), "langevin": (16, 0.50)},
}
QUOTED_ROOF = 186e9  # the notes' PyTorch matmul roof on that machine


def best_time(fn, *args, repeats: int) -> float:
    out = fn(*args)
    jax.block_until_ready(out)  # compile + warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - t)
    return best


def _flops(jitted, *args) -> float | None:
    """XLA's FLOP count of `jitted`, traced here with XLA's convolutions (it counts no FFI call, so oneDNN's
    convolutions would be missing): pass a function not traced before (JAX would reuse that trace)."""
    try:
        with xla_kernels():
            cost = jitted.trace(*args).lower().compile().cost_analysis()
        if isinstance(cost, list):
            cost = cost[0]
        return float(cost["flops"])
    except Exception:  # cost analysis is best effort on some backends
        return None


def numpy_matmul_peak(n: int = 2048, repeats: int = 5) -> float:
    a = np.random.default_rng(0).random((n, n), np.float32)
    return 2 * n**3 / best_time(np.matmul, a, a, repeats=repeats)


_OFFICIAL_YML = {"cifar10": "cifar10", "celeba64": "celeba", "church64": "church", "bedroom128": "bedroom",
                 "tower128": "tower", "ffhq256": "ffhq"}


def _namespace(d):
    return argparse.Namespace(**{k: _namespace(v) if isinstance(v, dict) else v for k, v in d.items()})


def _import_torch():
    try:
        import torch
        import yaml
    except ImportError as e:
        why = f"{e.name} is not installed (torch is a benchmark-only dependency: use a separate environment)"
        return None, None, why
    return torch, yaml, None


def _save_state_dict(torch, net) -> str:
    pth = os.path.join(tempfile.mkdtemp(prefix="bench_ncsn_"), "checkpoint.pth")
    torch.save(net.state_dict(), pth)  # a bare state dict, as the converter accepts
    return pth


def official_ncsnv2(path: str, preset: str, threads: int):
    """``(official, None)``: the official NCSNv2 network of `preset`'s official config (random init, eval mode), a
    ``.pth`` file of its state dict and its ``anneal_Langevin_dynamics`` (an `argparse.Namespace`, see
    `official_ncsn`; no training step); or ``(None, reason)``."""
    torch, yaml, why = _import_torch()
    if torch is None:
        return None, why
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

    def langevin(x, n, step_lr):  # the official sampler over the first level; its per-step norms included
        anneal_Langevin_dynamics(x, net, net.sigmas[:1], n_steps_each=n, step_lr=step_lr, final_only=True,
                                 verbose=False, denoise=False)

    return argparse.Namespace(
        torch=torch, net=net, pth=_save_state_dict(torch, net), sigmas=net.sigmas.numpy(), langevin=langevin,
        train=None, source=f"models/ncsnv2.py {type(net).__name__}, configs/{os.path.basename(yml)}, imports "
        "unchanged; sampler: models/__init__.py anneal_Langevin_dynamics"), None


_OFFICIAL_V1_DATA = {"mnist": "MNIST", "cifar10": "CIFAR10"}


def _anneal_runner(path: str):
    """``(AnnealRunner, how)``: the official ``runners/anneal_runner.py`` class, imported; where that fails (its
    module-level imports need torchvision and tensorboardX, which only its training and test data loading use), the
    class definition is executed unchanged from the file's source after those of its import lines that succeed."""
    try:
        from runners.anneal_runner import AnnealRunner  # the official module, unchanged

        return AnnealRunner, "imported"
    except ImportError as e:
        missing = e.name
    import ast

    file = os.path.join(path, "runners", "anneal_runner.py")
    with open(file) as f:
        source = f.read()
    namespace: dict = {"__name__": "runners.anneal_runner"}
    skipped, cls = [], None
    for node in ast.parse(source).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            try:
                exec(compile(ast.Module([node], []), file, "exec"), namespace)
            except ImportError:
                skipped.append(ast.get_source_segment(source, node))
        elif isinstance(node, ast.ClassDef) and node.name == "AnnealRunner":
            cls = node
    if cls is None:
        raise ImportError(f"{file} defines no class AnnealRunner")
    exec(compile(ast.Module([cls], []), file, "exec"), namespace)
    return namespace["AnnealRunner"], (f"importing runners.anneal_runner needs {missing}, not installed, so its "
                                       f"class AnnealRunner was executed unchanged from the file's source, import "
                                       f"lines skipped: {'; '.join(skipped)}")


def official_ncsn(path: str, cfg: NCSNConfig, dataset: str, threads: int):
    """``(official, None)``: the official NCSN v1 network (``models/cond_refinenet_dilated.py``
    ``CondRefineNetDilated``) of the official ``configs/anneal.yml`` with the data set, image size, channels, ngf
    and number of noise levels of `cfg` (random init with seed 0, eval mode), a ``.pth`` file of its state dict,
    the anneal runner's ``anneal_Langevin_dynamics`` and a factory of its training step (``losses/dsm.py``
    ``anneal_dsm_score_estimation`` + the runner's Adam, as ``AnnealRunner.train`` runs them); or
    ``(None, reason)``."""
    torch, yaml, why = _import_torch()
    if torch is None:
        return None, why
    yml = os.path.join(path, "configs", "anneal.yml")
    if not os.path.isfile(os.path.join(path, "models", "cond_refinenet_dilated.py")) or not os.path.isfile(yml):
        return None, f"{path} is not a checkout of ermongroup/ncsn with configs/anneal.yml"
    torch.set_num_threads(threads)
    sys.path.insert(0, os.path.abspath(path))
    try:
        from losses.dsm import anneal_dsm_score_estimation  # the official modules, unchanged
        from models.cond_refinenet_dilated import CondRefineNetDilated

        AnnealRunner, how = _anneal_runner(path)
    except Exception as e:  # noqa: BLE001 - any import failure of a foreign checkout is reported, not raised
        return None, f"importing the official modules from {path} failed: {type(e).__name__}: {e}"
    with open(yml) as f:
        raw = yaml.safe_load(f)
    name = _OFFICIAL_V1_DATA.get(dataset.split("/")[-1], "MNIST" if cfg.channels == 1 else "CIFAR10")
    raw["data"].update(dataset=name, image_size=cfg.image_size, channels=cfg.channels)
    raw["model"].update(ngf=cfg.ngf, num_classes=cfg.num_scales, sigma_begin=cfg.sigma_begin,
                        sigma_end=cfg.sigma_end)
    config = _namespace(raw)
    config.device = torch.device("cpu")
    runner = AnnealRunner(None, config)
    torch.manual_seed(0)
    net = CondRefineNetDilated(config).eval()
    m = config.model
    sigmas = np.exp(np.linspace(np.log(m.sigma_begin), np.log(m.sigma_end), m.num_classes))  # as runner.test

    def langevin(x, n, step_lr):  # the official sampler over the first level (its clamped per-step copies included)
        with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):  # its tqdm bar
            runner.anneal_Langevin_dynamics(x, net, sigmas[:1], n_steps_each=n, step_lr=step_lr)

    def train(x):
        """One official training step on the NCHW batch `x` (a copy of the network; the lines of
        ``AnnealRunner.train``'s loop, DataParallel and logging left out)."""
        score = copy.deepcopy(net)
        optimizer = runner.get_optimizer(score.parameters())
        sigmas_t = torch.tensor(sigmas).float().to(config.device)

        def step():
            score.train()
            X = x / 256. * 255. + torch.rand_like(x) / 256.
            labels = torch.randint(0, len(sigmas_t), (X.shape[0],), device=X.device)
            loss = anneal_dsm_score_estimation(score, X, labels, sigmas_t, config.training.anneal_power)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            return loss.item()

        return step

    return argparse.Namespace(
        torch=torch, net=net, pth=_save_state_dict(torch, net), sigmas=sigmas, langevin=langevin, train=train,
        source=f"models/cond_refinenet_dilated.py CondRefineNetDilated, configs/anneal.yml with data.dataset "
        f"{config.data.dataset}, image_size {cfg.image_size}, channels {cfg.channels}, model.ngf {cfg.ngf}, "
        f"num_classes {cfg.num_scales}; imports unchanged; loss: losses/dsm.py anneal_dsm_score_estimation + "
        f"AnnealRunner.get_optimizer (Adam); sampler: AnnealRunner.anneal_Langevin_dynamics; {how}"), None


def _thread_fns(torch, fn, threads, warmup: int = 1) -> dict:
    """``{"official_<t>t": (fn, set t threads)}`` for each torch thread count, each warmed up `warmup` times."""
    fns = {}
    for t in threads:
        torch.set_num_threads(t)
        for _ in range(warmup):  # warm-up at this thread count
            fn()
        fns[f"official_{t}t"] = (fn, functools.partial(torch.set_num_threads, t))
    return fns


def _primed(fns: dict, primed: bool) -> dict:
    """`fns` (``{name: (run, setup)}``) for `interleaved_medians`: as they are, or with `primed` each made to time
    itself after one untimed call of its own (``self_timed=True``): training and sampling run steps back to back,
    while interleaved rounds leave each side's memory idle during the other's step (module doc)."""
    if not primed:
        return fns

    def once(run, setup):
        def timed():
            setup()
            run()
            start = time.perf_counter()
            run()
            return time.perf_counter() - start

        return timed

    return {name: once(run, setup) for name, (run, setup) in fns.items()}


def print_speedup(med: dict, what: str) -> None:
    """The ratio official s / zoo s for each measured official timing in `med` (nothing if none)."""
    official_times = {name: t for name, t in med.items() if name.startswith("official")}
    if official_times:
        best = min(official_times, key=official_times.get)
        print(f"{what}: speed-up of zoo over the official code (official s / zoo s, both measured here): " +
              ", ".join(f"{med[name] / med['zoo']:.2f}x vs {name}" for name in official_times) +
              f"; vs the faster official ({best}): {med[best] / med['zoo']:.2f}x")
        rounds = getattr(med, "rounds", None)
        if rounds and len(rounds["zoo"]) > 1:  # each round's two timings met the same state of the machine
            paired = [o / z for o, z in zip(rounds[best], rounds["zoo"])]
            print(f"{what}: the same ratio round by round (paired, {best} s / zoo s): " +
                  " ".join(f"{r:.2f}x" for r in paired) + f"; median {np.median(paired):.2f}x, "
                  f"range {min(paired):.2f}-{max(paired):.2f}x")
        if "zoo_bf16" in med:
            print(f"{what}: zoo with bfloat16 convolutions vs the faster official ({best}, float32): "
                  f"{med[best] / med['zoo_bf16']:.2f}x")
    if "zoo_bf16" in med:
        print(f"{what}: bfloat16 convolutions vs float32 (zoo s / zoo_bf16 s): {med['zoo'] / med['zoo_bf16']:.2f}x")
    if "zoo_ynn_off" in med:
        print(f"{what}: reductions on YNNPACK vs all of YNNPACK off (zoo_ynn_off s / zoo s): "
              f"{med['zoo_ynn_off'] / med['zoo']:.2f}x")


def official_step_lr(cfg, official) -> float:
    """The step_lr to give the official sampler over the first level only: it scales step_lr by (sigma_0 / sigma_0)^2
    there, so step_lr pre-scaled by (sigma_0 / sigma_L)^2 gives the very step sizes of the full chain's first level."""
    return cfg.step_lr * float(official.sigmas[0] / official.sigmas[-1]) ** 2


def make_langevin(model, static, cfg, nb: int, ns: int, options: dict | None = None):
    """``(langevin, x0, key)``: a jitted round of `ns` steps of the model's default sampler (its compiler options,
    zoo._conv, unless `options`), ``langevin(params, x0, key)``, and its inputs for batch `nb`."""
    sampler = model.default_sampler()

    @functools.partial(jax.jit, compiler_options=dict(model.compiler_options()) if options is None else options)
    def langevin(params, x0, key):
        m = eqx.combine(params, static)
        return samplers.run(sampler, m.score, x0, num_steps=ns, key=key, batched=True).final

    x0 = jax.random.uniform(jax.random.key(3), (nb, cfg.image_size, cfg.image_size, cfg.channels))
    return langevin, x0, jax.random.key(2)


def make_train_step(model, static, options: dict | None = None):
    """A jitted training step of `model` (loss, gradients, Adam) as `zoo.fit` compiles it (with the model's compiler
    options, unless `options`): ``train_step(params, opt_state, x, key) -> (params, opt_state, loss)``, and its first
    ``opt_state``."""
    opt = optax.adam(1e-3)
    params = eqx.filter(model, eqx.is_inexact_array)

    @functools.partial(jax.jit, compiler_options=dict(model.compiler_options()) if options is None else options)
    def train_step(params, opt_state, x, key):
        def loss_fn(p):
            return eqx.combine(p, static).loss(x, None, key=key)[0]

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = opt.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state, loss

    return train_step, opt.init(params)


_RSS_TAG = "BENCH_NCSN_RSS "
_RSS_PHASES = ("zoo-train", "zoo-langevin", "official-train", "official-langevin")


def settling(run: Callable[[], Any]) -> Callable[[], Any]:
    """`run` (a call of zoo's) that settles the heap after its first call, as zoo's loops do after their first step
    (`zoo._malloc.settle`: where zoo's allocator setting is on, else nothing)."""
    calls = []

    def f():
        out = run()
        if not calls:
            calls.append(1)
            zoo._malloc.settle()
        return out

    return f


def side_phases(args, cfg, batch: int, side: str, phases: tuple[str, ...]) -> tuple[dict, Callable | None]:
    """``({phase: run}, set_threads)`` for one side (``zoo``: random init; ``official``: `official_ncsn` /
    `official_ncsnv2`), building only `phases` (``train``, ``langevin``; the official NCSNv2 code has no training
    step: left out); ``set_threads(t)`` sets torch's threads (nothing for zoo). ``({"error": why}, None)`` if the
    official code does not load."""
    size, ch, nb, ns = cfg.image_size, cfg.channels, args.sample_batch, args.langevin_steps
    runs = {}
    if side == "official":
        threads = parse_threads(args.torch_threads)
        if args.variant == "v1":
            official, why = official_ncsn(args.official, cfg, args.dataset, threads[0])
        else:
            official, why = official_ncsnv2(args.official, args.preset, threads[0])
        if official is None:
            return {"error": why}, None
        shutil.rmtree(os.path.dirname(official.pth), ignore_errors=True)
        torch = official.torch
        if "train" in phases and official.train is not None:
            x = torch.rand(batch, ch, size, size, generator=torch.Generator().manual_seed(1))
            runs["train"] = official.train(x)
        if "langevin" in phases:
            xt = torch.rand(nb, ch, size, size, generator=torch.Generator().manual_seed(3))
            runs["langevin"] = functools.partial(official.langevin, xt, ns, official_step_lr(cfg, official))
        return runs, torch.set_num_threads
    model = cfg.build(key=jax.random.key(0))
    params, static = eqx.partition(model, eqx.is_inexact_array)
    if "train" in phases:
        train_step, opt_state = make_train_step(model, static)
        x = jax.random.uniform(jax.random.key(1), (batch, size, size, ch))
        runs["train"] = settling(lambda: jax.block_until_ready(train_step(params, opt_state, x, jax.random.key(2))))
    if "langevin" in phases:
        langevin, x0, key = make_langevin(model, static, cfg, nb, ns)
        runs["langevin"] = settling(lambda: jax.block_until_ready(langevin(params, x0, key)))
    return runs, lambda t: None  # JAX's threads are the process's cores


def rss_child(args, cfg, batch: int) -> None:
    """``--rss-of SIDE-PHASE``: build only that side and phase (`side_phases`), run it (a warm-up and two calls) and
    print this process's peak RSS and its size after the imports as one tagged JSON line."""
    after_imports = peak_rss_mib()
    side, phase = args.rss_of.split("-")
    runs, _ = side_phases(args, cfg, batch, side, (phase,))
    if phase not in runs:
        print(_RSS_TAG + json.dumps({"error": runs.get("error") or "no official training step for this network"}))
        return
    for _ in range(3):
        runs[phase]()
    print(_RSS_TAG + json.dumps({"peak_rss_mib": peak_rss_mib(), "after_imports_mib": after_imports}))


def memory_table(argv: list[str], with_official: bool, train: bool) -> None:
    """Each side's and phase's peak RSS, each measured by `rss_child` in a fresh process."""
    phases = [p for p in _RSS_PHASES if (with_official or p.startswith("zoo")) and (train or p.endswith("langevin"))]
    print(f"peak RSS (VmHWM), each of {', '.join(phases)} in a fresh process of its own (this script with "
          "--rss-of; a warm-up and two calls; framework, weights, compilation and activations):", flush=True)
    for phase in phases:
        cmd = [sys.executable, os.path.abspath(__file__), *[a for a in argv if a != "--memory"], "--rss-of", phase]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(_RSS_TAG)]
        if proc.returncode or not lines:
            print(f"  {phase}: failed (exit {proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
            continue
        got = json.loads(lines[-1][len(_RSS_TAG):])
        if "error" in got:
            print(f"  {phase}: not measured: {got['error']}")
        else:
            print(f"  {phase}: peak {got['peak_rss_mib']:.0f} MiB (after the imports: {got['after_imports_mib']:.0f} "
                  "MiB)")


_WORKER_TAG = "BENCH_NCSN_WORKER "
PRIMED = " (each timed call right after an untimed one of the same side: --primed)"


def worker(args, cfg, batch: int) -> None:
    """``--worker SIDE``: build that side's training step and Langevin round (random init), then time one on each
    command (``train T`` / ``langevin T``, T torch threads: the official side's) until ``quit``, after
    ``--warmup`` untimed calls the first time, replying with `_WORKER_TAG`-prefixed JSON lines (seconds)."""

    phases, set_threads = side_phases(args, cfg, batch, args.worker, ("train", "langevin"))
    if set_threads is None:
        reply(_WORKER_TAG, phases)  # {"error": why}
        return
    reply(_WORKER_TAG, {"phases": sorted(phases), "zoo_malloc": zoo._malloc.applied()})
    warm = set()
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == "quit":
            break
        phase, t = cmd[0], int(cmd[1])
        set_threads(t)
        if (phase, t) not in warm:
            for _ in range(args.warmup):
                phases[phase]()
            warm.add((phase, t))
        if args.primed:
            phases[phase]()
        start = time.perf_counter()
        phases[phase]()
        reply(_WORKER_TAG, {"seconds": time.perf_counter() - start})
    reply(_WORKER_TAG, {"peak_rss_mib": peak_rss_mib()})


class Worker(Commanded):
    """A `worker` process of this script, driven by command; ``ready``: its first answer."""

    def __init__(self, argv: list[str], side: str):
        env = dict(os.environ)
        if side == "official":
            env.pop("ZOO_MALLOC", None)  # the official code as its users run it: the C library's allocator
        super().__init__([sys.executable, "-u", os.path.abspath(__file__), *argv, "--worker", side], _WORKER_TAG,
                         side, env)
        self.ready = self.read()

    def seconds(self, command: str) -> float:
        """The seconds the worker timed for `command` (``train T`` / ``langevin T``)."""
        got = self.ask(command)
        if "seconds" not in got:
            raise SystemExit(f"{self.name} worker: {got}")
        return got["seconds"]


def separate_processes(args, argv: list[str], batch: int, with_official: bool, train: bool) -> None:
    """`--processes`: the training step and the Langevin round timed with each side in its own `worker` process,
    interleaved rounds (each side timing itself), medians, paired ratios, and each worker's peak RSS."""
    argv = [a for a in argv if a not in ("--processes", "--memory", "--profile")]
    threads = parse_threads(args.torch_threads)
    workers = {"zoo": Worker(argv, "zoo")}
    if with_official:
        workers["official"] = Worker(argv, "official")
    for side, w in workers.items():
        if "error" in w.ready:
            raise SystemExit(f"--processes: the {side} worker failed: {w.ready['error']}")
    print(f"each side in its own process (zoo's {allocator_note(workers['zoo'].ready['zoo_malloc'])}; the official's: "
          "the C library's defaults); rounds interleaved by command, each timing itself, "
          f"{args.warmup} untimed calls of each first{PRIMED if args.primed else ''}", flush=True)
    for phase in ("train", "langevin") if train else ("langevin",):
        fns = {"zoo": functools.partial(workers["zoo"].seconds, f"{phase} 0")}
        if "official" in workers and phase in workers["official"].ready["phases"]:
            for t in threads:
                fns[f"official_{t}t"] = functools.partial(workers["official"].seconds, f"{phase} {t}")
        per = 1 if phase == "train" else args.langevin_steps
        raw = interleaved_medians(fns, args.repeats, self_timed=True)
        med = Medians({name: v / per for name, v in raw.items()})
        med.rounds = raw.rounds
        what = "train step" if phase == "train" else "Langevin step"
        for name, v in med.items():
            print(f"{what}, {name}, own process: {v:.3f} s")
        print_speedup(med, f"{what} (each side in its own process)")
    for side, w in workers.items():
        got = w.close()
        print(f"{side} worker: peak RSS {got.get('peak_rss_mib', float('nan')):.0f} MiB")


def langevin_bench(args, cfg, model, params, static, peak: float, official, threads, variants: dict):
    """One annealed-Langevin step at the config's settings (the model's default sampler: NCSN v1's T, step_lr 2e-5;
    NCSNv2's n_steps_each, step_lr, denoising step): ours and (if `official`) the official code's, interleaved rounds
    of ``--langevin-steps`` steps over the first noise level, medians; `variants` (`bench_variants`) are more rows of
    zoo's, in the same rounds. Returns ``({name: s/step}, ours, x0, key)``,
    ``ours(params, x0, key)`` the jitted round of zoo's steps."""
    nb, ns = args.sample_batch, args.langevin_steps
    sampler = model.default_sampler()
    langevin, x0, key = make_langevin(model, static, cfg, nb, ns)
    jax.block_until_ready(langevin(params, x0, key))  # compile + warm-up
    zoo._malloc.settle()  # as zoo's sampling loop does after its first step (where zoo's allocator setting is on)
    fns = {"zoo": (lambda: jax.block_until_ready(langevin(params, x0, key)), lambda: None)}
    for name, (m, context, options) in variants.items():
        p, st = eqx.partition(m, eqx.is_inexact_array)
        with context():
            fn = make_langevin(m, st, cfg, nb, ns, options)[0]
            jax.block_until_ready(fn(p, x0, key))  # traced here, in its context
        zoo._malloc.settle()
        fns[name] = (lambda fn=fn, p=p: jax.block_until_ready(fn(p, x0, key)), lambda: None)
    if official is not None:
        xt = official.torch.tensor(np.ascontiguousarray(np.asarray(x0).transpose(0, 3, 1, 2)))
        # The official sampler over the first level only: n steps of network + update (+ what it does per step),
        # at the full chain's step sizes there (official_step_lr), which ours takes.
        lr0 = official_step_lr(cfg, official)
        fns.update(_thread_fns(official.torch, lambda: official.langevin(xt, ns, lr0), threads))
    print(f"Langevin: batch {nb}, {ns} steps per round (level 0 of {len(cfg.sigmas)}, step_lr {cfg.step_lr:g}), "
          f"{args.repeats} interleaved rounds{PRIMED if args.primed else ''}, medians; load average {os.getloadavg()}",
          flush=True)
    raw = interleaved_medians(_primed(fns, args.primed), args.repeats, self_timed=args.primed)
    med = Medians({name: t / ns for name, t in raw.items()})
    med.rounds = raw.rounds  # per-round seconds of `ns` steps: their ratios are the per-step ones
    # XLA's cost analysis counts a loop body once, so count one batched score evaluation instead.
    score_batch = jax.jit(lambda p, x: jax.vmap(eqx.combine(p, static).score)(x, jnp.zeros(x.shape[0], jnp.int32)))
    f_lan = _flops(score_batch, params, x0)
    full = sampler.num_steps  # the config's whole chain
    for name, t in med.items():
        line = (f"Langevin step, batch {nb}, {name}: {t:.3f} s/step ({nb / t:.2f} img-steps/s; a {full}-step chain "
                f"gives {nb / (t * full):.4f} img/s)")
        if f_lan:
            line += f"; {f_lan / 1e9:.1f} GFLOP/step -> {f_lan / t / 1e9:.1f} GFLOP/s = {f_lan / t / peak:.0%} of peak"
        print(line)
    print_speedup(med, "Langevin step")
    return med, langevin, x0, key


def bench_variants(args, model) -> dict:
    """More rows of zoo's, timed in the same rounds as ``zoo``: name -> (model, the context to trace in, compiler
    options or None for the model's). ``zoo_xla_convs`` (``--xla-convs``): the same program traced with XLA's
    convolutions; ``zoo_bf16`` (``--bf16``): the same weights with ``compute_dtype="bfloat16"`` (the convolutions in
    bfloat16); ``zoo_ynn_off`` (``--ynn-off``): the same program compiled with XLA:CPU's YNNPACK fusions all off
    (zoo's options before stop 22; now they keep them for reductions, `zoo._conv.conv_compiler_options`)."""
    out = {}
    if args.xla_convs:
        out["zoo_xla_convs"] = (model, xla_kernels, None)
    if args.bf16:
        out["zoo_bf16"] = (zoo.replace_config(model, compute_dtype="bfloat16"), contextlib.nullcontext, None)
    if args.ynn_off:
        out["zoo_ynn_off"] = (model, contextlib.nullcontext, dict(YNNPACK_OFF))
    return out


def train_bench(args, train_step, train_args, batch: int, official, threads, variant_steps: dict) -> dict:
    """One training step (loss, gradients, Adam) of ours (and `variant_steps`, name -> (another of zoo's train
    steps, its arguments): `bench_variants`) and (if `official`, measured on each torch thread count) the official
    code's on the same batch, interleaved rounds, medians, after `args.warmup` untimed steps of each (the first
    steps of both sides are slower: allocator and caches settle). Returns ``{name: s/step}``."""
    fns = {"zoo": (settling(lambda: jax.block_until_ready(train_step(*train_args))), lambda: None)}
    for name, (fn, fn_args) in variant_steps.items():
        fns[name] = (settling(lambda fn=fn, a=fn_args: jax.block_until_ready(fn(*a))), lambda: None)
    for run, _ in fns.values():
        for _ in range(args.warmup):  # compile + warm-up
            run()
    if official is not None:
        x = train_args[2]
        step = official.train(official.torch.tensor(np.ascontiguousarray(np.asarray(x).transpose(0, 3, 1, 2))))
        fns.update(_thread_fns(official.torch, step, threads, warmup=args.warmup))
    print(f"train: batch {batch}, {args.warmup} untimed steps of each, then {args.repeats} interleaved rounds"
          f"{PRIMED if args.primed else ''}, medians; load average {os.getloadavg()}", flush=True)
    return interleaved_medians(_primed(fns, args.primed), args.repeats, self_timed=args.primed)


_PROFILE_ROWS = ("convolutions and matmuls, forward", "convolutions, backward (input and weight gradients)",
                 "everything else (normalisation, ELU, pooling, resizing, loss, Adam, copies)")


def profile_train(train_step, train_args, batch: int, official, threads: int) -> None:
    """Where one training step's time goes, each side by its own profiler: zoo's compiled step under
    `jax.profiler` (each op classified from the optimised HLO, `bench_pcd.op_kinds`), the official step under
    `torch.profiler` (each aten op's self CPU time), in three rows. On one thread (XLA_FLAGS
    ``--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1``, ``OMP_NUM_THREADS=1``,
    ``--torch-threads 1``) the per-op times add up to the step; on several, XLA runs independent ops
    concurrently and the rows overlap."""
    import collections

    from bench_pcd import op_kinds, op_seconds

    def step():
        jax.block_until_ready(train_step(*train_args))

    kinds = op_kinds(train_step.lower(*train_args).compile().as_text(), batch)
    step()
    folder = tempfile.mkdtemp(prefix="bench_ncsn_profile_")
    try:
        t = time.perf_counter()
        secs, _ = op_seconds(step, kinds, folder)
        walls = {"zoo": time.perf_counter() - t}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    parts = {"zoo": collections.defaultdict(float)}
    for name, sec in secs.items():
        kind = kinds[name]
        row = 0 if kind == "conv/matmul, forward" else 1 if kind.startswith("conv/matmul") else 2
        parts["zoo"][_PROFILE_ROWS[row]] += sec
    if official is not None:
        torch = official.torch
        torch.set_num_threads(threads)
        x = train_args[2]
        run = official.train(torch.tensor(np.ascontiguousarray(np.asarray(x).transpose(0, 3, 1, 2))))
        run()  # warm-up
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            t = time.perf_counter()
            run()
            walls["official"] = time.perf_counter() - t
        parts["official"] = collections.defaultdict(float)
        for e in prof.key_averages():
            row = 0 if e.key in ("aten::mkldnn_convolution", "aten::convolution", "aten::_convolution") else \
                1 if e.key == "aten::convolution_backward" else 2
            parts["official"][_PROFILE_ROWS[row]] += e.self_cpu_time_total * 1e-6
    sides = list(parts)
    print(f"where one training step's time goes (batch {batch}; each side's own profiler, one profiled step; "
          f"per-op seconds, which add up to the step only on one thread):")
    print("  " + " | ".join(f"{side:>9}" for side in sides) + " | kind")
    for row in _PROFILE_ROWS:
        print("  " + " | ".join(f"{parts[side][row]:8.3f}s" for side in sides) + f" | {row}")
    print("  " + " | ".join(f"{sum(parts[side].values()):8.3f}s" for side in sides) + " | sum of the ops")
    print("  " + " | ".join(f"{walls[side]:8.3f}s" for side in sides) + " | the profiled step's wall time")


def conv_shapes(model, cfg, batch: int) -> list[tuple[dict, int]]:
    """The convolutions of one batched score evaluation (the training step's forward), read off its jaxpr: each
    distinct one's ``lax.conv_general_dilated`` arguments and how often it occurs."""
    x = jnp.zeros((batch, cfg.image_size, cfg.image_size, cfg.channels))
    with xla_kernels():  # the convolutions as lax.conv_general_dilated, whichever kernels zoo runs
        jaxpr = jax.make_jaxpr(lambda x: jax.vmap(model.score)(x, jnp.zeros(batch, jnp.int32)))(x)
    found: dict = {}

    def walk(jx):
        for eqn in jx.eqns:
            if eqn.primitive.name == "conv_general_dilated":
                p = eqn.params
                key = (tuple(eqn.invars[0].aval.shape), tuple(eqn.invars[1].aval.shape), tuple(p["window_strides"]),
                       tuple(map(tuple, p["padding"])), tuple(p["lhs_dilation"]), tuple(p["rhs_dilation"]),
                       p["dimension_numbers"], p["feature_group_count"])
                found[key] = found.get(key, 0) + 1
            for sub in jax.extend.core.jaxprs_in_params(eqn.params):
                walk(sub)

    walk(jaxpr.jaxpr)
    names = ("lhs", "rhs", "strides", "padding", "lhs_dilation", "rhs_dilation", "dn", "groups")
    return [(dict(zip(names, key)), n) for key, n in found.items()]


_CONV_PARTS = ("all three", "forward", "input grad", "weight grad")


def conv_bench(args, model, cfg, batch: int, official, threads, med_train: dict) -> None:
    """The network's convolutions alone at the training batch, zoo's (`zoo._onednn.conv` as the network calls it, in
    programs compiled with the model's compiler options) and torch's
    (NCHW as the official network runs them), interleaved rounds, medians. Per distinct convolution, all its
    instances in the network run back to back (one jitted program; torch's calls in a loop), each on inputs of its
    own: the forward with both gradients as a training step runs them (``jax.vjp``; torch's autograd), and each part
    alone (the forward; the input gradient, ``torch.nn.grad.conv2d_input``; the weight gradient,
    ``torch.nn.grad.conv2d_weight``). Summed over the network, and the rest of each side's training step
    (`med_train`, its median step time, less its convolutions)."""
    if official is None:
        print("--convs needs --official (torch) to compare")
        return
    torch, fn = official.torch, official.torch.nn.functional
    options = dict(model.compiler_options()) or None
    parts: dict = {}
    shapes = conv_shapes(model, cfg, batch)
    for i, (c, n) in enumerate(shapes):
        if c["dn"].lhs_spec != (0, 3, 1, 2) or c["groups"] != 1 or set(c["lhs_dilation"]) != {1}:
            raise SystemExit(f"--convs: a convolution zoo's NCSN does not use: {c}")
        (pt, pb), (pl, pr) = c["padding"]
        if pt != pb or pl != pr:
            raise SystemExit(f"--convs: asymmetric padding {c['padding']} has no torch conv2d equivalent")

        def conv(x, w, c=c):  # zoo's convolution, as the network runs it (oneDNN's kernels where available)
            return zoo_conv(x, w, stride=c["strides"], padding=c["padding"], dilation=c["rhs_dilation"])

        keys = jax.random.split(jax.random.key(i), (n, 2))
        xs = [jax.random.normal(k[0], c["lhs"]) for k in keys]
        ws = [jax.random.normal(k[1], c["rhs"]) * 0.05 for k in keys]
        dys = [conv(x, w) for x, w in zip(xs, ws)]  # cotangents: any arrays of the output's shape

        def fwd_vjp(x, w, dy, conv=conv):
            y, vjp = jax.vjp(conv, x, w)
            return y, vjp(dy)

        one = {
            "all three": fwd_vjp,
            "forward": lambda x, w, dy, conv=conv: conv(x, w),
            "input grad": lambda x, w, dy, conv=conv: jax.vjp(lambda x: conv(x, w), x)[1](dy),
            "weight grad": lambda x, w, dy, conv=conv: jax.vjp(lambda w: conv(x, w), w)[1](dy),
        }
        nchw = [[torch.tensor(np.asarray(a).transpose(*t)) for a in arrays]
                for arrays, t in ((xs, (0, 3, 1, 2)), (ws, (3, 2, 0, 1)), (dys, (0, 3, 1, 2)))]  # HWIO -> OIHW
        xts, wts, dyts = nchw
        grads = [(x.clone().requires_grad_(), w.clone().requires_grad_()) for x, w in zip(xts, wts)]
        kw = {"stride": c["strides"], "padding": (pt, pl), "dilation": c["rhs_dilation"]}

        def autograd(grads=grads, dyts=dyts, kw=kw):
            for (x, w), dy in zip(grads, dyts):
                fn.conv2d(x, w, **kw).backward(dy)
                x.grad = w.grad = None

        def no_grad(f, xts=xts, wts=wts, dyts=dyts):
            def run():
                with torch.no_grad():
                    for x, w, dy in zip(xts, wts, dyts):
                        f(x, w, dy)
            return run

        theirs = {
            "all three": autograd,
            "forward": no_grad(lambda x, w, dy, kw=kw: fn.conv2d(x, w, **kw)),
            "input grad": no_grad(lambda x, w, dy, kw=kw: torch.nn.grad.conv2d_input(x.shape, w, dy, **kw)),
            "weight grad": no_grad(lambda x, w, dy, kw=kw: torch.nn.grad.conv2d_weight(x, w.shape, dy, **kw)),
        }
        for part in _CONV_PARTS:
            f = jax.jit(lambda xs, ws, dys, f=one[part]: [f(*a) for a in zip(xs, ws, dys)], compiler_options=options)
            jax.block_until_ready(f(xs, ws, dys))  # compile + warm-up
            parts[i, part] = (lambda f=f, a=(xs, ws, dys): jax.block_until_ready(f(*a)), theirs[part])
    print(f"the network's {sum(n for _, n in shapes)} convolutions ({len(shapes)} distinct) at batch {batch}, each "
          f"distinct one's instances back to back: forward and both gradients ('all three') and each part alone, "
          f"{args.repeats} interleaved rounds, medians (ms per instance, zoo / official, official / zoo):", flush=True)
    total: dict = {}
    for t in threads:
        torch.set_num_threads(t)
        official_name = f"official_{t}t"
        for i, (c, n) in enumerate(shapes):
            cells = []
            for part in _CONV_PARTS:
                ours, theirs = parts[i, part]
                theirs()  # warm-up at this thread count
                med = interleaved_medians({"zoo": (ours, lambda: None), official_name: (theirs, lambda: None)},
                                          args.repeats)
                for name, sec in med.items():
                    total[name, part] = total.get((name, part), 0.0) + sec
                cells.append(f"{part} {med['zoo'] / n * 1e3:.1f} / {med[official_name] / n * 1e3:.1f} "
                             f"({med[official_name] / med['zoo']:.2f}x)")
            print(f"  {n:2d} x input {c['lhs']} kernel {c['rhs']} dilation {c['rhs_dilation'][0]}: " +
                  "; ".join(cells))
    for part in _CONV_PARTS:
        total["zoo", part] /= len(threads)  # timed once per thread count
        print(f"all convolutions of a training step, {part}: " +
              ", ".join(f"{name} {sec:.3f} s" for (name, q), sec in total.items() if q == part))
        print_speedup({name: sec for (name, q), sec in total.items() if q == part}, f"convolutions, {part}")
    rest = {name: med_train[name] - sec for (name, q), sec in total.items() if q == "all three" and name in med_train}
    print("the rest of the training step (its median time less its convolutions' 'all three'): " +
          ", ".join(f"{name} {sec:.3f} s" for name, sec in rest.items()))


def print_quoted(quoted, batch: int, nb: int) -> None:
    """The reference notes' official PyTorch times, printed for reference only: they were measured on another
    machine, so no ratio is computed from them."""
    if quoted is None:
        print("no quoted PyTorch figure for this config (quoted: v1 cifar10 ngf 128, v1 mnist ngf 64)")
        return
    for what, (qb, qt), b in (("train step", quoted["train"], batch), ("Langevin step", quoted["langevin"], nb)):
        print(f"reference (quoted, not measured; the notes' machine, no ratio computed): official PyTorch {what}, "
              f"batch {qb}: {qt:.2f} s/step" + ("" if qb == b else f" (this run's batch is {b})"))


def matmul_peak(n: int = 2048, repeats: int = 5) -> float:
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    f = jax.jit(lambda a: a @ a)
    return 2 * n**3 / best_time(f, a, repeats=repeats)


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
    p.add_argument("--warmup", type=int, default=3, help="untimed training steps of each side before the rounds "
                   "(both sides' first steps are slower: glibc's allocator adapts its thresholds over them)")
    p.add_argument("--devices", type=int, default=1, help="also time data-parallel over N CPU devices")
    p.add_argument("--preset", default=None, help="an NCSN preset (e.g. ncsnv2/cifar10): its network and sampler "
                   "settings replace --dataset / --ngf / --variant")
    p.add_argument("--official", default=None, help="a checkout of the official code to time side by side: "
                   "ermongroup/ncsn for --variant v1, ermongroup/ncsnv2 for the NCSNv2 presets")
    p.add_argument("--torch-threads", default="2,1", help="torch thread counts to time the official network with")
    p.add_argument("--skip-train", action="store_true", help="time sampling only")
    p.add_argument("--memory", action="store_true", help="also measure each side's peak RSS for training and "
                   "sampling, each in a fresh process of its own")
    p.add_argument("--convs", action="store_true", help="with --official: also time the network's convolutions "
                   "alone (forward and both gradients) on both sides, to split the training step's time")
    p.add_argument("--xla-convs", action="store_true", help="also time zoo with XLA's convolutions instead of "
                   "oneDNN's (zoo._onednn), interleaved in the same rounds (the row zoo_xla_convs)")
    p.add_argument("--bf16", action="store_true", help="also time zoo with compute_dtype='bfloat16' (the "
                   "convolutions in bfloat16, zoo.ncsn.NCSNConfig), the same weights, interleaved in the same rounds "
                   "(the row zoo_bf16)")
    p.add_argument("--ynn-off", action="store_true", help="also time zoo compiled with XLA:CPU's YNNPACK fusions "
                   "all off (zoo's options keep them for reductions), interleaved in the same rounds (row zoo_ynn_off)")
    p.add_argument("--profile", action="store_true", help="also profile one training step on each side (jax.profiler, "
                   "torch.profiler) and print its time by kind of op: convolutions forward, backward, the rest")
    p.add_argument("--primed", action=argparse.BooleanOptionalAction, default=True,
                   help="time each round's call of a side right after an untimed one of its own (default; module doc)")
    p.add_argument("--processes", action="store_true", help="also time the training and Langevin steps with each "
                   "side in a process of its own (module doc)")
    p.add_argument("--rss-of", choices=_RSS_PHASES, default=None, help=argparse.SUPPRESS)  # a --memory child
    p.add_argument("--worker", choices=["zoo", "official"], default=None, help=argparse.SUPPRESS)  # --processes
    argv = sys.argv[1:] if argv is None else argv
    args = p.parse_args(argv)
    threads = parse_threads(args.torch_threads)
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
    if args.rss_of:
        rss_child(args, cfg, batch)
        return
    if args.worker:
        worker(args, cfg, batch)
        return
    model = cfg.build(key=jax.random.key(0))
    official, official_note = None, "official timing skipped: no --official PATH given"
    if args.official and args.variant == "v1":
        official, why = official_ncsn(args.official, cfg, args.dataset, threads[0])
    elif args.official and args.preset and args.variant.startswith("ncsnv2"):
        official, why = official_ncsnv2(args.official, args.preset, threads[0])
    elif args.official:
        why = "--official is for --variant v1 (ermongroup/ncsn) and the NCSNv2 presets (--preset ncsnv2/...)"
    if args.official and official is None:
        official_note = f"official timing skipped: {why}"
    elif official is not None:
        torch, net = official.torch, official.net
        try:
            model = zoo.ncsn.from_official(official.pth, weights="raw", config=cfg)  # the official network's weights
        finally:
            shutil.rmtree(os.path.dirname(official.pth), ignore_errors=True)
        xt = jax.random.uniform(jax.random.key(5), (2, size, size, ch))
        lv = jnp.array([0, len(cfg.sigmas) - 1])
        ours = np.asarray(jax.vmap(model.score)(xt, lv))
        with torch.no_grad():
            theirs = net(torch.tensor(np.asarray(xt).transpose(0, 3, 1, 2)), torch.tensor(np.asarray(lv)))
        theirs = theirs.numpy().transpose(0, 2, 3, 1)
        err = float(np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs)))
        official_note = (f"official: {args.official} ({official.source}), torch {torch.__version__} on "
                         f"{' and '.join(map(str, threads))} thread(s), float32, random init (seed 0); its weights "
                         f"converted to zoo by zoo.ncsn.from_official: max relative difference of the scores "
                         f"{err:.1e}")
        if err > 1e-3:
            raise SystemExit(f"the converted network does not reproduce the official one ({err:.1e})")
    n_params = sum(x.size for x in jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array)))
    print(f"NCSN {args.variant} {args.dataset} {size}x{size}x{ch}, ngf {ngf}, {n_params / 1e6:.2f} M params; "
          f"{jax.devices()[0].device_kind} ({os.cpu_count()} cores visible), JAX {jax.__version__}, NHWC, fp32; "
          f"zoo's convolutions on {'oneDNN (zoo._onednn)' if onednn_available() else 'XLA'}")
    print(official_note, flush=True)

    print(f"load average (1, 5, 15 min): {os.getloadavg()}; timings are only comparable on a quiet machine")
    print(allocator_note(zoo._malloc.applied()))
    peak = matmul_peak()
    print(f"matmul peak (2048^2 f32, best of 5): {peak / 1e9:.1f} GFLOP/s")
    print(f"numpy (BLAS) f32 matmul 2048^2: {numpy_matmul_peak() / 1e9:.1f} GFLOP/s; the reference notes measured a "
          f"{QUOTED_ROOF / 1e9:.0f} GFLOP/s roof with PyTorch on the machine of the quoted times (a calibration: the "
          "quoted times are only comparable when this machine's BLAS is about as fast; no ratio is computed from them)")

    params, static = eqx.partition(model, eqx.is_inexact_array)
    train_step, opt_state = make_train_step(model, static)

    x = jax.random.uniform(jax.random.key(1), (batch, size, size, ch))
    k = jax.random.key(2)
    if args.skip_train:
        langevin_bench(args, cfg, model, params, static, peak, official, threads, bench_variants(args, model))
        if args.processes:
            separate_processes(args, argv, batch, official is not None, train=False)
        if args.memory:
            memory_table(argv, official is not None, train=False)
        print(f"{official_note}\nload average at the end (1, 5, 15 min): {os.getloadavg()} (the CPU is shared)")
        return
    train_official = official if official is not None and official.train is not None else None
    variants = bench_variants(args, model)
    variant_steps = {}
    for name, (m, context, options) in variants.items():
        p, st = eqx.partition(m, eqx.is_inexact_array)
        with context():
            step, state = make_train_step(m, st, options)
            jax.block_until_ready(step(p, state, x, k))  # traced here, in its context
        variant_steps[name] = (step, (p, state, x, k))
    med_train = train_bench(args, train_step, (params, opt_state, x, k), batch, train_official, threads,
                            variant_steps)
    f_train = _flops(make_train_step(model, static)[0], params, opt_state, x, k)  # a fresh trace (see _flops)
    for name, t in med_train.items():
        line = f"train step, batch {batch}, {name}: {t:.3f} s ({1 / t:.3f} steps/s, {batch / t:.1f} img/s)"
        if f_train:
            rate = f_train / t
            line += f"; {f_train / 1e9:.1f} GFLOP/step -> {rate / 1e9:.1f} GFLOP/s = {rate / peak:.0%} of peak"
        print(line)
    print_speedup(med_train, "train step")
    if args.convs:
        conv_bench(args, model, cfg, batch, train_official, threads, med_train)
    if args.profile:
        profile_train(train_step, (params, opt_state, x, k), batch, train_official, threads[0])
    t_train = med_train["zoo"]
    if args.devices > 1:
        ndev = len(jax.devices())
        if batch % ndev:
            raise SystemExit(f"--batch {batch} is not divisible by --devices {ndev}")
        mesh = zoo.data_mesh()
        rep, shard = NamedSharding(mesh, PartitionSpec()), NamedSharding(mesh, PartitionSpec("data"))
        args_dp = (jax.device_put(params, rep), jax.device_put(opt_state, rep), jax.device_put(x, shard), k)
        t_train_dp = best_time(train_step, *args_dp, repeats=args.repeats)
        t_one = best_time(train_step, params, opt_state, x, k, repeats=args.repeats)  # again, interleaved
        t_train = min(t_train, t_one)
        print(f"train step, batch {batch} data-parallel over {ndev} CPU devices: {t_train_dp:.3f} s "
              f"({t_train / t_train_dp:.2f}x the single-device step, best of both single-device timings)")

    med_lan, langevin, x0, key = langevin_bench(args, cfg, model, params, static, peak, official, threads, variants)
    nb, ns = args.sample_batch, args.langevin_steps
    if args.devices > 1 and nb % len(jax.devices()) == 0:
        params_dp, x0_dp = jax.device_put(params, rep), jax.device_put(x0, shard)
        t_lan_dp = best_time(langevin, params_dp, x0_dp, key, repeats=args.repeats)
        t_lan = min(med_lan["zoo"], best_time(langevin, params, x0, key, repeats=args.repeats) / ns)
        print(f"Langevin step, batch {nb} sharded over {len(jax.devices())} CPU devices: {t_lan_dp / ns:.3f} s/step "
              f"({t_lan / (t_lan_dp / ns):.2f}x the single-device step)")
    if args.variant == "v1":
        print_quoted(quoted, batch, nb)
    if args.processes:
        separate_processes(args, argv, batch, train_official is not None, train=True)
    if args.memory:
        memory_table(argv, official is not None, train=True)
    print(f"{official_note}\nload average at the end (1, 5, 15 min): {os.getloadavg()} (the CPU is shared)")


if __name__ == "__main__":
    main()
