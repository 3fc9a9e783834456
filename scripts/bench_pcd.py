"""One PCD training iteration of the GWG paper's deep EBM, zoo vs the official code, side by side.

The paper's binary-MNIST run (the `wgrathwohl/GWG_release` README: ``pcd_ebm_ema.py --sampler gwg --model resnet-64
--lr .0001 --warmup_iters 10000 --buffer_size 10000 --buffer_init mean --base_dist --reinit_freq 0.0``, batch 100,
EMA 0.999, l2 0, 40 GWG steps per update in the paper) times one iteration of:

- zoo: `zoo.ebm.ResNetEBM` (``ResNetEBMConfig(channels, num_blocks=6, sampling_steps, buffer_size, ...)``), its
  ``loss`` (replay-buffer draw and re-init, ``sampling_steps`` GWG steps of every chain in one `lax.scan`, energies
  of data and samples, the l2 term: 0 in the paper's command, as here) differentiated with respect to
  ``model.trainable()``, then an optax ``chain(adam(linear warm-up schedule), zoo.ema_params(0.999))`` update: the
  same composition as `zoo.fit`'s jitted step (built here from public names, compiled with the model's
  ``compiler_options()`` as `zoo.fit` compiles it), one jitted call per iteration.
- official: the body of ``pcd_ebm_ema.py``'s training loop, line for line: warm-up learning rate, buffer draw
  (``np.random.choice`` of the buffer indices) and Bernoulli re-init, ``sampling_steps`` calls of
  ``DiffSampler(784, 1, approx=True, temp=2).step`` (with the loop's per-step hop count), buffer write-back,
  ``model(x)`` and ``model(x_fake)`` of its ``EBM(ResNetEBM(channels), init_mean)``, the loss with its l2 term,
  ``zero_grad``, ``backward``, ``Adam.step`` and the per-parameter EMA update. The modules (`pcd_ebm_ema` for
  ``EBM`` and ``get_sampler``, `mlp`, `samplers`) are imported unchanged from ``--official PATH``; the loop body
  itself is not a function there, so it is transcribed below. Excluded on both sides: logging every
  ``print_every`` steps, image dumps, AIS evaluation, checkpoints and the data loader (each iteration indexes a batch
  of the training set held in memory).

The official side runs in a subprocess (the python of ``--official-python``, default this one; it needs torch, never
imports JAX) that times its own rounds on command, so that the rounds interleave (zoo, official, zoo, ...; medians
of ``--rounds`` rounds of ``--iters`` iterations, after an untimed warm-up) and each side's peak RSS is its own
process's (``ru_maxrss``: the training set, the framework, and for zoo the XLA compilation). torch runs on as many
threads as JAX has cores (``--torch-threads 2,1`` times several counts, the last ratio printed is against the
fastest: with the other core busy, torch's OpenMP threads wait for each other and 2 threads can be 30x slower than
1; an untimed warm-up iteration precedes the first round at each count). Both sides start from the same
weights: the official network's initial weights are copied into the zoo model, and the two networks' outputs and
the two log-densities are compared on data and buffer states before anything is timed; both parameter counts are
printed. Without ``--official`` the script times zoo alone and says it skipped the official side. No official
figure for this iteration is quoted anywhere in the project's notes, so none is printed: every ratio printed is
official seconds / zoo seconds, both measured in this run. ``--breakdown`` then profiles one more zoo iteration
(`jax.profiler`) and prints where its time goes: each op of the compiled step by kind (convolutions and matmuls
forward, backward and weight gradients; elementwise; layout copies), in the GWG loop or once per iteration.
zoo's convolutions run on oneDNN's or XLA's kernels per shape, whichever is the faster here (`zoo._onednn`);
``--xla-convs`` also times the same step traced with XLA's kernels only, in the same rounds (row zoo_xla_convs);
``--ynn-off`` the same step compiled with XLA:CPU's YNNPACK fusions all off (row zoo_ynn_off).

    ../venv-torch/bin/python scripts/bench_pcd.py --official ../official/GWG_release           # the paper's config
    python scripts/bench_pcd.py --official ../official/GWG_release --official-python ../venv-torch/bin/python
    python scripts/bench_pcd.py --rounds 1 --iters 1 --breakdown        # zoo alone, and where its time goes
    nice -n 10 python scripts/bench_pcd.py --channels 8 --batch 8 --steps-per-update 2 --rounds 3 --iters 2 \\
        --official ../official/GWG_release --official-python ../venv-torch/bin/python     # a smoke run
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import sys
import tempfile
import time
import warnings

import numpy as np
from _gwg_release import import_gwg_release  # no JAX: bench_pcd's official worker imports it too
from _timing import Commanded, interleaved_medians, jax_cores, parse_threads, peak_rss_mib, reply, serve  # no JAX


# The paper's command (GWG_release README) and pcd_ebm_ema.py's defaults for what it does not set.
PAPER = {"lr": 1e-4, "warmup_iters": 10000, "buffer_size": 10000, "ema": 0.999, "reinit_freq": 0.0, "l2": 0.0,
         "weight_decay": 0.0, "num_blocks": 6, "image_size": 28}
_TAG = "BENCH_PCD "  # prefix of the worker's replies on its stdout (anything else there is passed through)


# ---------------------------------------------------------------------------------------------- the official side


def import_official(path: str):
    """``(torch, pcd_ebm_ema, mlp)``, the official modules imported unchanged from `path` (`_gwg_release`), or
    ``(None, reason)``."""
    return import_gwg_release(
        path, ("pcd_ebm_ema", "mlp"), needs="scipy, matplotlib, scikit-learn, igraph and tqdm",
        no_torch=f"torch is not installed for {sys.executable} (a benchmark-only dependency: give a python that "
                 "has it with --official-python)",
    )


def official_trainer(mods, args, data: np.ndarray, threads: int):
    """``(iteration, model, buffer)``: the official run's state as ``pcd_ebm_ema.main`` sets it up for the paper's
    command, and ``iteration()``, one pass of its training loop's body."""
    torch, pcd, mlp = mods
    torch.set_num_threads(threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    device = pcd.device  # the official script's choice: cpu here
    a = argparse.Namespace(**{**PAPER, "input_size": [1, 28, 28], "input_type": "binary", "sampler": "gwg",
                              "batch_size": args.batch, "sampling_steps": args.steps_per_update,
                              "buffer_size": args.buffer_size})
    # --- pcd_ebm_ema.main: model, data mean, buffer ("--buffer_init mean"), base distribution, optimiser, EMA copy
    net = mlp.ResNetEBM(args.channels)
    init_batch = torch.from_numpy(data)
    eps = 1e-2
    init_mean = init_batch.mean(0) * (1. - 2 * eps) + eps
    init_dist = torch.distributions.Bernoulli(probs=init_mean)
    buffer = init_dist.sample((a.buffer_size,))
    model = pcd.EBM(net, init_mean)  # "--base_dist"
    optimizer = torch.optim.Adam(model.parameters(), lr=a.lr, weight_decay=a.weight_decay)
    ema_model = copy.deepcopy(model)
    model.to(device)
    ema_model.to(device)
    sampler = pcd.get_sampler(a)  # DiffSampler(784, 1, fixed_proposal=False, approx=True, multi_hop=False, temp=2.)
    itr = 0
    hop_dists = []
    all_inds = list(range(a.buffer_size))
    init_dist = torch.distributions.Bernoulli(probs=init_mean.to(device))
    reinit_dist = torch.distributions.Bernoulli(probs=torch.tensor(a.reinit_freq))
    perm = np.random.RandomState(args.seed).permutation(len(data))
    n_batches = len(data) // a.batch_size

    def iteration():
        nonlocal itr
        # the data loader's next batch (not timed as the loader: an index into the training set in memory)
        batch = torch.from_numpy(data[perm[(itr % n_batches) * a.batch_size:][: a.batch_size]])
        # --- the body of pcd_ebm_ema.main's `for x in train_loader` loop, line for line
        if itr < a.warmup_iters:
            lr = a.lr * float(itr) / a.warmup_iters
            for param_group in optimizer.param_groups:
                param_group['lr'] = lr
        x = batch.to(device).requires_grad_()  # preprocess() is the identity for static binarized MNIST
        buffer_inds = sorted(np.random.choice(all_inds, a.batch_size, replace=False))
        x_buffer = buffer[buffer_inds].to(device)
        reinit = reinit_dist.sample((a.batch_size,)).to(device)
        x_reinit = init_dist.sample((a.batch_size,)).to(device)
        x_fake = x_reinit * reinit[:, None] + x_buffer * (1. - reinit[:, None])
        hops = []
        st = time.time()
        for k in range(a.sampling_steps):
            x_fake_new = sampler.step(x_fake.detach(), model).detach()
            h = (x_fake_new != x_fake).float().view(x_fake_new.size(0), -1).sum(-1).mean().item()
            hops.append(h)
            x_fake = x_fake_new
        st = time.time() - st
        hop_dists.append(np.mean(hops))
        buffer[buffer_inds] = x_fake.detach().cpu()
        logp_real = model(x).squeeze()
        grad_reg = 0.0  # p_control = 0
        logp_fake = model(x_fake).squeeze()
        obj = logp_real.mean() - logp_fake.mean()
        loss = -obj + grad_reg + a.l2 * ((logp_real ** 2.).mean() + (logp_fake ** 2.).mean())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        for p, ema_p in zip(model.parameters(), ema_model.parameters()):
            ema_p.data = ema_p.data * a.ema + p.data * (1. - a.ema)
        itr += 1

    return iteration, model, buffer


def worker(args, tmp: str) -> None:
    """The official side, in its own process: set up, write the initial weights and check values, then time rounds
    on command (``run ITERS THREADS``) until ``quit``, replying with `_TAG`-prefixed JSON lines."""

    mods, why = import_official(args.official)
    if mods is None:
        reply(_TAG, {"error": why})
        return
    torch = mods[0]
    threads = parse_threads(args.torch_threads)
    data = np.load(os.path.join(tmp, "data.npy"))
    iteration, model, buffer = official_trainer(mods, args, data, threads[0])
    x_check = torch.cat([torch.from_numpy(data[:4]), buffer[:4]])
    with torch.no_grad():
        net_out, logp = model.net(x_check), model(x_check)
    weights = {name: t.detach().numpy() for name, t in model.state_dict().items()}
    np.savez(os.path.join(tmp, "official.npz"), x_check=x_check.numpy(), net=net_out.numpy(), logp=logp.numpy(),
             **{"w/" + k: v for k, v in weights.items()})
    reply(_TAG, {"torch": torch.__version__, "params": sum(p.numel() for p in model.net.parameters()),
           "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad)})
    serve(_TAG, iteration, torch.set_num_threads)


class Official(Commanded):
    """The official side's process, driven from the zoo side."""

    def __init__(self, args, tmp: str):
        cmd = [args.official_python or sys.executable, "-u", os.path.abspath(__file__), "--worker", tmp,
               "--official", args.official, "--channels", str(args.channels), "--batch", str(args.batch),
               "--steps-per-update", str(args.steps_per_update), "--buffer-size", str(args.buffer_size),
               "--seed", str(args.seed), "--torch-threads", args.torch_threads_text]
        super().__init__(cmd, _TAG, "official")


# ---------------------------------------------------------------------------------------------------- the zoo side


def zoo_trainer(args, data: np.ndarray, options: dict | None = None):
    """``(iteration, finish, start, model)``: a fresh `zoo.ebm.ResNetEBM` with its base and replay buffer;
    ``start(model)`` sets the weights to train (and initialises the optimiser on them); ``iteration()`` runs one
    jitted PCD update (dispatched asynchronously, as `zoo.fit` runs them, compiled with the model's compiler options
    unless `options`); ``finish()`` waits for the last one."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import optax

    import zoo
    from zoo.ebm import ResNetEBMConfig

    cfg = ResNetEBMConfig(channels=args.channels, num_blocks=PAPER["num_blocks"], image_size=PAPER["image_size"],
                          base_dist=True, sampling_steps=args.steps_per_update, num_flips=1,
                          buffer_size=args.buffer_size, reinit_freq=PAPER["reinit_freq"], l2=PAPER["l2"])
    key = jax.random.key(args.seed)
    k_model, k_state, k_steps = jax.random.split(key, 3)
    model = cfg.build(key=k_model).with_base(data)  # the base: the data-mean Bernoulli, as PCDTrainer sets it
    state = model.init_state(data, key=k_state)  # the replay buffer, drawn from the base
    # zoo.fit's optimiser for TrainConfig(learning_rate=1e-4, warmup_steps=10000, ema_decay=0.999), from public names
    opt = optax.chain(optax.adam(optax.linear_schedule(0.0, PAPER["lr"], PAPER["warmup_iters"])),
                      zoo.ema_params(PAPER["ema"]))

    # zoo.fit's jitted step, compiled with the model's XLA options (ResNetEBM: YNNPACK fusions for reductions only,
    # its convolutions run on one thread in the GWG loop; zoo._conv.conv_compiler_options)
    options = dict(model.compiler_options()) if options is None else options

    @eqx.filter_jit(donate="all-except-first", compiler_options=options or None)
    def step(key, model, opt_state, state, batch):
        params, frozen = eqx.partition(model, model.trainable())

        def loss_fn(p):
            return eqx.combine(p, frozen).loss(batch, state, key=key)

        (loss, (new_state, metrics)), grads = eqx.filter_value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        model = eqx.apply_updates(model, updates)
        return model, opt_state, new_state, dict(metrics, loss=loss, grad_norm=optax.tree.norm(grads))

    perm = np.random.RandomState(args.seed).permutation(len(data))
    n_batches = len(data) // args.batch
    images = data.reshape(len(data), 28, 28, 1)  # zoo's layout for binarized_mnist
    carry = {"itr": 0, "model": model, "opt_state": None, "state": state, "metrics": None}

    def start(model):
        # fresh buffers for everything the step donates (as zoo.fit places them): the EMA starts as the parameters
        fresh = lambda tree: jax.tree.map(lambda x: jnp.copy(x) if eqx.is_array(x) else x, tree)
        carry["model"] = fresh(model)
        carry["opt_state"] = fresh(opt.init(eqx.filter(model, model.trainable())))
        carry["state"] = fresh(carry["state"])

    def iteration():
        i = carry["itr"]
        batch = images[perm[(i % n_batches) * args.batch:][: args.batch]]
        out = step(jax.random.fold_in(k_steps, i), carry["model"], carry["opt_state"], carry["state"], batch)
        carry["model"], carry["opt_state"], carry["state"], carry["metrics"] = out
        carry["itr"] = i + 1

    def finish():
        jax.block_until_ready(carry["metrics"])

    def compiled_text():  # the optimised HLO of the jitted step (for --breakdown)
        i = carry["itr"]
        batch = images[perm[(i % n_batches) * args.batch:][: args.batch]]
        with warnings.catch_warnings():  # the batch is donated (as in the step) but unusable: XLA says so
            warnings.simplefilter("ignore", UserWarning)
            lowered = step.lower(k_steps, carry["model"], carry["opt_state"], carry["state"], batch)
            return lowered.compile().compiled.as_text()  # equinox wraps jax.stages.Compiled

    iteration.compiled_text = compiled_text
    return iteration, finish, start, model


def load_official_weights(model, npz):
    """`model` (a `zoo.ebm.ResNetEBM`) holding the official network's weights (``npz["w/<state_dict name>"]``)."""
    import equinox as eqx
    import jax.numpy as jnp

    pairs = [(lambda m: m.proj.weight, "net.proj.weight"), (lambda m: m.proj.bias, "net.proj.bias"),
             (lambda m: m.head.weight, "net.energy_linear.weight"), (lambda m: m.head.bias, "net.energy_linear.bias")]
    for i, block in enumerate(model.blocks):
        for ours, theirs in [("conv1", "conv1"), ("conv2", "conv2")] + ([("shortcut", "shortcut_conv")]
                                                                        if block.shortcut is not None else []):
            for leaf in ("weight", "bias"):
                pairs.append((lambda m, i=i, o=ours, leaf=leaf: getattr(getattr(m.blocks[i], o), leaf),
                              f"net.net.{i}.{theirs}.{leaf}"))
    names = {k[2:] for k in npz.files if k.startswith("w/")} - {"mean"}
    if names != {name for _, name in pairs}:
        raise SystemExit(f"the official network's parameters {sorted(names)} do not map onto zoo's ResNetEBM "
                         f"({sorted(name for _, name in pairs)}): the architectures differ")
    for get, name in pairs:
        w = npz["w/" + name]
        target = get(model)
        if w.size != target.size:
            raise SystemExit(f"official {name} has shape {w.shape}, zoo's {target.shape}: the architectures differ")
        model = eqx.tree_at(get, model, jnp.asarray(w.reshape(target.shape)))
    return model


def op_kinds(hlo: str, batch: int) -> dict:
    """``{instruction name: kind}`` for the optimised HLO text of the step: what each op of a profile is.

    Kinds: a convolution or matmul (XLA:CPU's library fusions or plain ops, or `zoo._onednn`'s custom calls,
    named by part), forward or backward (autodiff's transpose, by the op's JAX name), with weight gradients
    apart (heuristic: a convolution, or a backward matmul, whose output's leading dimension is not a multiple
    of `batch`, the chains per update); layout copies (fusions whose root is a transpose or copy); elementwise
    and reductions (the other loop fusions); the rest."""
    import re

    comps: dict = {}
    cur = None
    for line in hlo.splitlines():
        if line and not line.startswith(" "):
            m = re.match(r"(?:ENTRY )?%?([\w.\-]+) .*\{$", line)
            cur = m.group(1) if m else None
            if cur:
                comps[cur] = []
        elif cur is not None and line.startswith("  "):
            comps[cur].append(line.strip())
    op = re.compile(r"(?:ROOT )?%?([\w.\-]+) = (\S+) ([\w\-]+)\(")
    kinds = {}
    for lines in comps.values():
        for line in lines:
            m = op.match(line)
            if not m:
                continue
            name, shape, opcode = m.groups()
            body = [line]
            called = re.search(r"calls=%?([\w.\-]+)", line)
            if opcode == "fusion" and called and called.group(1) in comps:
                body = comps[called.group(1)]
            ops = {o.group(3) for o in map(op.match, body) if o}
            # the JAX name of the op (for a fusion: of its convolution or matmul, else its own)
            main = [b for b in body if " convolution(" in b or " dot(" in b] or [line]
            backward = any("transpose(" in n for b in main for n in re.findall(r'op_name="([^"]*)"', b))
            target = re.search(r'custom_call_target="zoo_onednn_conv_(\w+)"', line) if opcode == "custom-call" else None
            if target:  # zoo._onednn's convolutions: the handler says which part it is
                part = {"fwd": "forward", "dgrad": "backward", "wgrad": "weight gradient"}[target.group(1)]
                kind = "conv/matmul, " + part
            elif ops & {"convolution", "dot"}:
                dims = [int(d) for d in re.findall(r"\d+", shape.split("[")[-1].split("]")[0])]
                # a convolution whose output does not lead with the batch is a weight gradient (XLA's rewrites
                # of those drop the JAX name); a matmul is one if it is a backward one with such an output
                weights = bool(dims) and dims[0] % batch != 0 and ("convolution" in ops or backward)
                kind = "conv/matmul, " + ("weight gradient" if weights else "backward" if backward else "forward")
            elif opcode == "fusion" and ("kind=kLoop" in line or "kind=kInput" in line):
                root = [x for x in body if x.startswith("ROOT")]
                rop = op.match(root[0]).group(3) if root and op.match(root[0]) else ""
                kind = "layout copies" if rop in ("transpose", "copy") or name.startswith("transpose") else \
                    "elementwise / reductions"
            elif opcode in ("copy", "transpose"):
                kind = "layout copies"
            else:
                kind = "other"
            kinds[name] = kind
    return kinds


def op_seconds(run, names, folder: str) -> tuple[dict, dict]:
    """``(seconds, calls)`` per op of `names` (the compiled program's instruction names) while ``run()`` runs
    under a `jax.profiler` trace written to `folder`: each op's summed duration and its number of runs. XLA:CPU
    runs independent ops concurrently, so with several threads the durations overlap; on one thread they add up."""
    import collections
    import glob
    import gzip

    import jax

    with jax.profiler.trace(folder, create_perfetto_trace=True):
        run()
    trace = json.load(gzip.open(sorted(glob.glob(os.path.join(folder, "**", "*.trace.json.gz"), recursive=True))[-1]))
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    total, count = collections.Counter(), collections.Counter()
    for e in events:
        if e.get("ph") == "X" and e.get("name") in names:
            total[e["name"]] += e["dur"] * 1e-6
            count[e["name"]] += 1
    return dict(total), dict(count)


def breakdown(iteration, finish, steps: int, batch: int, folder: str) -> dict:
    """Seconds per op kind (`op_kinds`) of one zoo iteration, from a `jax.profiler` trace, split into the ops run
    once per iteration and those of the GWG loop (run `steps` times or more)."""
    import collections

    kinds = op_kinds(iteration.compiled_text(), batch)
    total, count = op_seconds(lambda: (iteration(), finish()), kinds, folder)
    out: dict = collections.defaultdict(float)
    for name, sec in total.items():
        out[("GWG loop" if count[name] >= steps else "once") + ": " + kinds[name]] += sec
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--channels", type=int, default=64, help="ResNet EBM width (the paper: resnet-64)")
    p.add_argument("--batch", type=int, default=100, help="data and chains per update (the paper: 100)")
    p.add_argument("--steps-per-update", type=int, default=40, help="GWG steps per update (the paper: 40)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (medians)")
    p.add_argument("--iters", type=int, default=3, help="training iterations per round and side")
    p.add_argument("--buffer-size", type=int, default=PAPER["buffer_size"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--official", default=None, help="a checkout of wgrathwohl/GWG_release to time side by side")
    p.add_argument("--official-python", default=None,
                   help="the python (with torch) that runs the official side (default: this one)")
    p.add_argument("--torch-threads", default=None,
                   help="torch thread counts to time the official code with, e.g. 2,1 (default: JAX's core count)")
    p.add_argument("--xla-convs", action="store_true",
                   help="also time zoo's step traced with XLA's convolution kernels only (zoo._onednn.xla_kernels)")
    p.add_argument("--ynn-off", action="store_true", help="also time zoo's step compiled with XLA:CPU's YNNPACK "
                   "fusions all off (zoo's options keep them for reductions: zoo._conv.conv_compiler_options)")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--breakdown", action="store_true",
                   help="after timing, profile one more zoo iteration and print its op time by kind (jax.profiler)")
    p.add_argument("--worker", help=argparse.SUPPRESS)  # internal: run the official side, files in this folder
    args = p.parse_args(argv)
    threads = parse_threads(args.torch_threads)
    args.torch_threads_text = ",".join(map(str, threads))
    if min(args.channels, args.batch, args.steps_per_update, args.rounds, args.iters) < 1:
        raise SystemExit("--channels, --batch, --steps-per-update, --rounds and --iters must be positive")
    if args.batch > args.buffer_size:
        raise SystemExit(f"--batch {args.batch} exceeds --buffer-size {args.buffer_size}")
    if args.worker:
        worker(args, args.worker)
        return 0

    import jax

    import zoo
    from zoo._conv import YNNPACK_OFF
    from zoo._onednn import available as onednn_available, xla_kernels

    data = zoo.data.load("binarized_mnist", "train").x.reshape(-1, 784)  # static binarized MNIST, float32 {0, 1}
    print(f"PCD iteration of the GWG paper's deep EBM: ResNet EBM {args.channels} channels "
          f"({PAPER['num_blocks']} + 2 blocks), batch {args.batch}, {args.steps_per_update} GWG steps per update, "
          f"buffer {args.buffer_size}, Adam lr {PAPER['lr']:g} with {PAPER['warmup_iters']}-step warm-up, "
          f"EMA {PAPER['ema']}, l2 {PAPER['l2']}, reinit {PAPER['reinit_freq']}; static binarized MNIST "
          f"({len(data)} training images)", flush=True)
    print(f"JAX {jax.__version__} on {jax.devices()[0].device_kind}, {jax_cores()} cores (of {os.cpu_count()}); "
          f"load average (1, 5, 15 min) {os.getloadavg()}", flush=True)
    iteration, finish, start, model = zoo_trainer(args, data)
    official, note, tmp = None, "official timing skipped: no --official PATH given", None
    results: dict = {"config": {k: getattr(args, k) for k in ("channels", "batch", "steps_per_update", "rounds",
                                                              "iters", "buffer_size")} | PAPER,
                     "load_average_start": os.getloadavg()}
    try:
        if args.official:
            tmp = tempfile.mkdtemp(prefix="bench_pcd_")
            np.save(os.path.join(tmp, "data.npy"), data)
            official = Official(args, tmp)
            info = official.read()
            if "error" in info:
                note = f"official timing skipped: {info['error']}"
                official.close()
                official = None
            else:
                with np.load(os.path.join(tmp, "official.npz")) as npz:
                    model = load_official_weights(model, npz)
                    x = jax.numpy.asarray(npz["x_check"])
                    net_err = np.max(np.abs(np.asarray(jax.vmap(model.net)(x)) - npz["net"])) / np.max(
                        np.abs(npz["net"]))
                    lp_err = np.max(np.abs(np.asarray(jax.vmap(model.log_prob)(x)) - npz["logp"])) / np.max(
                        np.abs(npz["logp"]))
                print(f"parameters: official ResNetEBM({args.channels}) {info['params']} "
                      f"({info['trainable']} trainable in its EBM); zoo ResNetEBM {zoo.num_params(model)}", flush=True)
                print(f"zoo holding the official initial weights vs the official EBM on 4 data + 4 buffer states: "
                      f"max relative difference of the network term {net_err:.1e}, of log p {lp_err:.1e}", flush=True)
                results.update(official_params=info["params"], zoo_params=zoo.num_params(model),
                               net_rel_diff=float(net_err), logp_rel_diff=float(lp_err))
                if info["params"] != zoo.num_params(model) or net_err > 1e-3 or lp_err > 1e-4:
                    raise SystemExit("the zoo network does not reproduce the official one; not timing it")
                note = (f"official: {args.official} (pcd_ebm_ema.py's loop body on its EBM / mlp.ResNetEBM / "
                        f"samplers.DiffSampler, imports unchanged), torch {info['torch']} on "
                        f"{' and '.join(map(str, threads))} thread(s), in its own process")
        if official is None:
            print(f"parameters: zoo ResNetEBM {zoo.num_params(model)}", flush=True)
        print(note, flush=True)
        def ours(iteration, finish):
            def run():
                t = time.perf_counter()
                for _ in range(args.iters):
                    iteration()
                finish()
                return time.perf_counter() - t
            return run

        start(model)
        t = time.perf_counter()
        iteration()
        finish()
        print(f"zoo: first iteration (compile + run) {time.perf_counter() - t:.1f} s; its convolutions on "
              f"{'oneDNN or XLA per shape (zoo._onednn)' if onednn_available() else 'XLA'}", flush=True)
        fns = {"zoo": ours(iteration, finish)}
        if args.xla_convs:  # the same step traced with XLA's convolution kernels only
            iteration_xla, finish_xla, start_xla, _ = zoo_trainer(args, data)
            start_xla(model)
            with xla_kernels():
                iteration_xla()
                finish_xla()
            fns["zoo_xla_convs"] = ours(iteration_xla, finish_xla)
        if args.ynn_off:  # the same step compiled with XLA:CPU's YNNPACK fusions all off
            iteration_off, finish_off, start_off, _ = zoo_trainer(args, data, dict(YNNPACK_OFF))
            start_off(model)
            iteration_off()
            finish_off()
            fns["zoo_ynn_off"] = ours(iteration_off, finish_off)
        if official is not None:
            def theirs(t):
                def run():
                    out = official.ask(f"run {args.iters} {t}")
                    if "error" in out:
                        raise SystemExit(f"the official side failed: {out['error']}")
                    return out["seconds"]
                return run

            fns.update({f"official_{t}t": theirs(t) for t in threads})
        print(f"timing: {args.rounds} interleaved rounds of {args.iters} iterations per side, medians", flush=True)
        med = {name: s / args.iters for name, s in interleaved_medians(fns, args.rounds, self_timed=True).items()}
        results["zoo_s_per_iter"] = med.pop("zoo")
        results["zoo_peak_rss_mib"] = peak_rss_mib()
        print(f"zoo:      {results['zoo_s_per_iter']:.3f} s/iteration "
              f"({args.steps_per_update / results['zoo_s_per_iter']:.1f} GWG steps/s of {args.batch} chains); "
              f"peak RSS {results['zoo_peak_rss_mib']:.0f} MiB (this process, XLA compilation included)")
        if "zoo_xla_convs" in med:
            s = results["zoo_xla_convs_s_per_iter"] = med.pop("zoo_xla_convs")
            print(f"zoo, XLA's convolutions only: {s:.3f} s/iteration "
                  f"({args.steps_per_update / s:.1f} GWG steps/s); / zoo = {s / results['zoo_s_per_iter']:.2f}x")
        if "zoo_ynn_off" in med:
            s = results["zoo_ynn_off_s_per_iter"] = med.pop("zoo_ynn_off")
            print(f"zoo, YNNPACK fusions all off: {s:.3f} s/iteration "
                  f"({args.steps_per_update / s:.1f} GWG steps/s); / zoo = {s / results['zoo_s_per_iter']:.2f}x")
        if official is not None:
            rss = official.close().get("peak_rss_mib")
            official = None
            results["official_peak_rss_mib"] = rss
            for name, s in med.items():
                results[f"{name}_s_per_iter"] = s
                ratio = s / results["zoo_s_per_iter"]
                print(f"official ({name.split('_')[1]}): {s:.3f} s/iteration ({args.steps_per_update / s:.2f} GWG "
                      f"steps/s); official / zoo = {ratio:.2f}x (measured)")
            best = min(med, key=med.get)
            results["ratio_vs_faster_official"] = med[best] / results["zoo_s_per_iter"]
            print(f"speed-up of zoo over the faster official setting ({best}): "
                  f"{results['ratio_vs_faster_official']:.2f}x; official peak RSS "
                  f"{rss if rss is None else f'{rss:.0f} MiB'} (its process)")
        if args.breakdown:
            prof = tempfile.mkdtemp(prefix="bench_pcd_profile_")
            try:
                parts = breakdown(iteration, finish, args.steps_per_update, args.batch, prof)
            finally:
                shutil.rmtree(prof, ignore_errors=True)
            total = sum(parts.values())
            print(f"zoo, one profiled iteration: {total:.2f} s of ops (profiling adds overhead), by kind:")
            for kind, sec in parts.items():
                print(f"  {sec:8.3f} s  {100 * sec / total:5.1f}%  {kind}")
            results["breakdown_s"] = parts
        results["official"] = note
        results["load_average_end"] = os.getloadavg()
        print(f"{note}\nload average at the end (1, 5, 15 min): {os.getloadavg()} (the CPU may be shared)")
    finally:
        if official is not None:
            official.close()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
