"""The ``zoo`` command line: list, info, download, sample, train, evaluate, push."""

from __future__ import annotations

import argparse
import inspect
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from ._convert import add_convert_parser
from ._errors import ConfigError, ZooError


def _cmd_list(args: argparse.Namespace) -> int:
    from ._registry import list_models, list_presets
    from ._table import model_rows

    if args.presets:
        from ._registry import get_preset

        for name in list_presets(args.pattern):
            p = get_preset(name)
            print(f"{name:28s} {p.dataset:18s} {p.summary}")
        return 0
    names = list_models(args.pattern)
    if not names:
        print(f"no model matches {args.pattern!r}", file=sys.stderr)
        return 1
    rows = model_rows(names)
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from ._checkpoint import read_meta
    from ._load import resolve

    path = resolve(args.name, offline=args.offline)
    meta = read_meta(path)
    out = {
        k: meta.get(k)
        for k in ("name", "family", "config_type", "config", "num_params", "has_ema", "training", "metrics", "card")
    }
    out["path"] = str(path)
    print(json.dumps(out, indent=2))
    return 0


def _cmd_download(args: argparse.Namespace) -> int:
    from ._load import resolve

    print(resolve(args.name, offline=False))
    return 0


def _key(seed: int) -> Any:
    import jax

    return jax.random.key(seed)


def _cmd_sample(args: argparse.Namespace) -> int:
    import equinox as eqx
    import numpy as np

    from ._conv import jit_options
    from ._images import save_grid
    from ._load import load

    if args.cpu_devices is not None:
        _split_cpu(args.cpu_devices)  # before anything starts JAX's backend
    model = _with_settings(load(args.name, weights=args.weights, offline=args.offline), args.set)
    k = args.interpolate
    if k is not None and not hasattr(model, "interpolate"):
        raise ConfigError(f"--interpolate: {args.name} ({type(model).__name__}) has no interpolation mode; "
                          "it is NCSN's (annealed Langevin with noise interpolated between two chains)")
    if k is not None and args.nrow is not None:
        raise ConfigError("--nrow does not apply with --interpolate: each row of the grid is one pair's K images")
    n = args.n if args.n is not None else (64 if k is None else 8)
    t = time.perf_counter()
    what = f"{n} rows of {k} interpolations" if k is not None else f"{n}"
    print(f"sampling {what} from {args.name} ({type(model).__name__})...", file=sys.stderr)
    parameters = inspect.signature(model.sample).parameters
    sharding = _chain_sharding(model, n) if k is None and "sharding" in parameters else None
    if sharding is not None:
        print(f"data-parallel over {sharding.mesh.size} devices", file=sys.stderr)
    if k is None:
        # Called eagerly: a Markov chain model's `sample` hands its chains to zoo.samplers.run, which jits them itself
        # (cached, with the model's compiler options) and, on a CPU, runs them as one group per core, each group its
        # own execution, all at once; or data-parallel over the devices of a `sharding`. With `progress`, the chain
        # runs step by step under a progress bar drawn from the host: the compiled step then holds no callback, and
        # JAX's persistent cache keeps it.
        extra = {"sharding": sharding} if sharding is not None else {}
        if "progress" in parameters:
            extra["progress"] = True
        samples = model.sample(n, key=_key(args.seed), **extra)
    else:  # (rows, k, h, w, c): one row per pair of endpoints; with a convolutional model's options (zoo._conv)
        samples = eqx.filter_jit(lambda m, key: m.interpolate(n, k, key=key), compiler_options=jit_options(model))(
            model, _key(args.seed))
    samples = np.asarray(samples)
    print(f"done in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    if args.npz:
        np.savez_compressed(args.npz, samples=samples)
    if k is None:
        save_grid(model.to_images(samples), args.output, nrow=args.nrow)
    else:
        save_grid(model.to_images(samples.reshape(-1, *samples.shape[2:])), args.output, nrow=k)
    print(args.output)
    return 0


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _overrides(pairs: list[str]) -> dict[str, Any]:
    """``["steps_per_level=5", "denoise=true"]`` -> ``{"steps_per_level": 5, "denoise": True}``
    (values read as JSON where they parse, else as strings)."""
    out = {}
    for pair in pairs:
        k, sep, v = pair.partition("=")
        if not sep or not k.strip():
            raise ConfigError(f"--set takes KEY=VALUE (a config field and its value), got {pair!r}")
        out[k.strip()] = _parse_value(v)
    return out


def _with_settings(model: Any, pairs: list[str]) -> Any:
    """`model` under its config with the ``--set`` fields changed (same weights): sampler and
    evaluation settings such as ``steps_per_level``, ``iw_samples`` or ``ais_steps``."""
    from ._model import replace_config

    return replace_config(model, **_overrides(pairs))


def _split_cpu(n: int) -> None:
    """Present the host CPU as `n` JAX devices, so `zoo.fit` runs one data-parallel
    program per device: XLA:CPU runs most elementwise and reduction kernels on one
    thread, so on a several-core CPU this is faster (`scripts/bench_ncsn.py --devices`)."""
    import jax

    if n < 1:
        raise ConfigError(f"--cpu-devices must be at least 1, got {n}")
    try:
        jax.config.update("jax_num_cpu_devices", n)
    except RuntimeError as e:  # the backend already started (e.g. `main` called twice in one process)
        if len(jax.devices("cpu")) != n:
            raise ConfigError(f"--cpu-devices {n}: JAX's CPU backend is already initialised ({e})") from e
    if jax.devices()[0].platform == "cpu" and len(jax.devices()) != n:
        raise ConfigError(f"--cpu-devices {n}: JAX made {len(jax.devices())} CPU devices instead")


def _chain_sharding(model: Any, n: int) -> Any:
    """Where `zoo sample` runs `n` chains: data-parallel over as many of the devices as divide `n` (several
    GPUs, or a CPU split with ``--cpu-devices``), for a model whose ``sample`` takes a ``sharding``
    (`zoo.samplers.run`); None (one device) otherwise. The same samples either way."""
    import jax
    from jax.sharding import NamedSharding, PartitionSpec

    from ._train import data_mesh

    devices = jax.devices()
    ways = max(d for d in range(1, len(devices) + 1) if n % d == 0)
    return NamedSharding(data_mesh(devices[:ways]), PartitionSpec("data")) if ways > 1 else None


def _latest_step(workdir: Path) -> int | None:
    """The step of the newest training checkpoint `zoo.fit` wrote in `workdir`."""
    folder = workdir / "checkpoints"
    steps = [int(p.name) for p in folder.iterdir() if p.name.isdigit()] if folder.is_dir() else []
    return max(steps) if steps else None


def _set_option(argv: list[str], flag: str, value: str | None) -> list[str]:
    """`argv` without `flag` (``--flag V`` or ``--flag=V``), then ``flag value`` appended unless None."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] == flag:
            i += 2
            continue
        if not argv[i].startswith(flag + "="):
            out.append(argv[i])
        i += 1
    return out + ([flag, value] if value is not None else [])


def _command(argv: list[str]) -> str:
    return "zoo " + " ".join(shlex.quote(a) for a in argv)


def _log_line(step: int, row: dict[str, float]) -> None:
    """One line per log step on stderr (when no progress bar shows: stderr is not a terminal)."""
    shown = {k: float(f"{v:.5g}") for k, v in row.items() if k != "step"}
    print(f"step {step} {json.dumps(shown)}", file=sys.stderr, flush=True)


def _cmd_train(args: argparse.Namespace) -> int:
    from . import data as zdata
    from ._checkpoint import save
    from ._load import load_bundle
    from ._registry import get_preset

    if args.cpu_devices is not None:
        _split_cpu(args.cpu_devices)
    if args.distributed:
        from ._train import initialize_distributed

        initialize_distributed()
    preset = get_preset(args.preset)
    if args.export and args.out:
        raise ConfigError("--export DIR writes the checkpoint to DIR; drop --out")
    config = preset.config
    model_overrides = _overrides(args.set)
    if model_overrides:
        config = config.replace(**model_overrides)
    changes = {
        "steps": args.steps,
        "batch_size": args.batch_size,
        "learning_rate": args.lr,
        "seed": args.seed,
        "checkpoint_every": args.checkpoint_every,
    }
    train = preset.train.replace(**{k: v for k, v in changes.items() if v is not None})
    workdir = Path(args.workdir or f"runs/{args.preset.replace('/', '-')}")
    argv = list(args.argv)
    command = _command(argv)
    if args.export:
        step = _latest_step(workdir)
        if step is None:
            raise ConfigError(
                f"--export: {workdir / 'checkpoints'} holds no training checkpoint; train first "
                "(the same command without --export), or pass the run's --workdir"
            )
        if args.steps is not None and args.steps != step:
            raise ConfigError(
                f"--export writes the newest checkpoint of {workdir} (step {step}) and trains nothing; "
                f"drop --steps (or train to step {args.steps} first)"
            )
        train = train.replace(steps=step)
        # What trains to this checkpoint (resumable): this command with --out DIR instead of --export DIR.
        command = _command(_set_option(_set_option(_set_option(argv, "--export", None), "--steps", str(step)),
                                       "--out", args.export))
    ema = None
    if args.init_from:
        bundle = load_bundle(args.init_from)
        fresh = None if type(bundle.config) is type(config) else config.build(key=_key(args.seed or 0))
        if fresh is None:  # the released weights, under their own config with the --set fields changed
            model = _with_settings(bundle.model, args.set)
            ema = None if bundle.ema is None else _with_settings(bundle.ema, args.set)
        elif hasattr(fresh, "warm_start"):  # a part of the model from another kind (a ResNet EBM's RBM term)
            model = fresh.warm_start(bundle.ema if bundle.ema is not None else bundle.model)  # the released weights
        else:
            raise ConfigError(
                f"{args.init_from} is a {type(bundle.config).__name__}, preset {args.preset} "
                f"trains a {type(config).__name__}"
            )
    else:
        model = config.build(key=_key(args.seed or 0))
    dataset = zdata.load(preset.dataset, preset.split)
    data = model.prepare_data(dataset)
    callback = None if sys.stderr.isatty() else _log_line
    result = model.train(
        data, train, key=_key(1000 + (args.seed or 0)), workdir=workdir, ema=ema, progress=None, callback=callback
    )
    out = Path(args.export or args.out or workdir / "model")
    training = {**result.info, "dataset": preset.dataset, "preset": args.preset, "command": command}
    if args.export:
        training["export_command"] = _command(argv)
    if args.init_from:
        training["fine_tuned_from"] = args.init_from
    card = {
        "summary": preset.summary,
        "datasets": [preset.dataset],
        "license": preset.license,
        "tags": list(preset.tags),
    }
    save(result.model, out, ema=result.ema, name=args.name or out.name, training=training, overwrite=True, card=card)
    if result.history:
        print(json.dumps(result.history[-1]))
    print(out)
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import jax
    import numpy as np

    from . import data as zdata
    from ._checkpoint import annotate
    from ._load import load_bundle

    bundle = load_bundle(args.name, offline=args.offline)
    model = bundle.ema if (bundle.ema is not None and args.weights != "raw") else bundle.model
    model = _with_settings(model, args.set)
    dataset_name = args.dataset or bundle.meta.get("training", {}).get("dataset")
    if not dataset_name:
        raise ConfigError(f"{args.name} does not record its data set; pass --dataset NAME")
    dataset = zdata.load(dataset_name, args.split)
    command = _command(args.argv)
    results: dict[str, float] = {}
    if "fid" in args.metric or "kid" in args.metric:
        from . import metrics

        results.update(
            metrics.evaluate_images(
                model,
                dataset,
                n=args.n,
                key=_key(args.seed),
                metrics=[m for m in args.metric if m in ("fid", "kid")],
                reference_n=args.reference_n,
            )
        )
    if "default" in args.metric:
        data = model.prepare_data(dataset)
        if args.n is not None:
            data = jax.tree.map(lambda x: x[: args.n], data)
        results.update({k: float(v) for k, v in model.evaluate(data, key=_key(args.seed)).items()})
    print(json.dumps(results, indent=2))
    if args.record:
        recs = [
            {"name": k, "value": v, "dataset": dataset_name, "split": args.split, "command": command}
            for k, v in results.items()
            if np.isfinite(v)
        ]
        annotate(bundle.path, metrics=recs)
        print(f"recorded in {bundle.path}/config.json", file=sys.stderr)
    return 0


def _cmd_push(args: argparse.Namespace) -> int:
    from ._hub import push
    from ._load import resolve
    from ._registry import checkpoints_dir

    folder = resolve(args.name)
    assets = args.assets_dir
    bundled = checkpoints_dir()
    cards = bundled.parent / "cards"
    if assets is None and folder.resolve().parent == bundled.resolve() and cards.is_dir():
        assets = cards  # a bundled model of a source checkout: its grids live in cards/
    sha = push(
        folder, args.repo_id, revision=args.revision, private=args.private, commit_message=args.message,
        assets_dir=assets,
    )
    print(f"pushed {args.name} to hf://{args.repo_id}@{sha}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zoo", description=__doc__,
        epilog="Compiled programs are kept in JAX's persistent compilation cache, in jax/ under zoo's cache folder "
        "($ZOO_CACHE_DIR, else $XDG_CACHE_HOME/zoo or ~/.cache/zoo), so a second run does not compile them again; "
        "ZOO_COMPILATION_CACHE=0 turns that off. On Linux `zoo train` sets glibc's allocator to reuse XLA's "
        "per-execution scratch instead of mapping it afresh each step (zoo/_malloc.py); ZOO_MALLOC=0 turns that off, "
        "ZOO_MALLOC=1 turns it on for the other commands.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list pretrained models (or training presets with --presets)")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style pattern, e.g. 'ncsn-*'")
    p.add_argument("--presets", action="store_true", help="list training presets instead")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("info", help="show a model's config, training facts and metrics")
    p.add_argument("name", help="registered name, hf://org/repo[@rev] or folder")
    p.add_argument("--offline", action="store_true", default=None)
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("download", help="download a model into the cache and print its folder")
    p.add_argument("name")
    p.set_defaults(func=_cmd_download)

    p = sub.add_parser("sample", help="draw samples and write them as a PNG grid")
    p.add_argument("name")
    p.add_argument("-n", type=int, default=None,
                   help="number of samples (default 64), or of rows with --interpolate (default 8)")
    p.add_argument("-o", "--output", default="samples.png", help="PNG path (default samples.png)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--nrow", type=int, default=None)
    p.add_argument("--interpolate", type=int, default=None, metavar="K",
                   help="NCSN: rows of K images with noise interpolated between two chains (NCSNv2's "
                        "interpolation mode), one row of the grid per pair")
    p.add_argument("--npz", default=None, help="also save the raw samples to this .npz")
    p.add_argument("--weights", choices=["ema", "raw"], default=None)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="sample under a changed config field, same weights (e.g. steps_per_level=5); repeatable")
    p.add_argument("--offline", action="store_true", default=None)
    p.add_argument("--cpu-devices", type=int, default=None, metavar="N",
                   help="on CPU, split the host into N JAX devices and run the chains data-parallel over them "
                        "(models whose sample takes a sharding: NCSN, RBM; the same samples; on 2 cores no faster "
                        "for ncsn-mnist, whose progress-bar loop already keeps both busy). Without it, a Markov chain "
                        "model's chains already run on a CPU as one group per core (zoo.samplers.run's groups)")
    p.set_defaults(func=_cmd_sample)

    p = sub.add_parser(
        "train",
        help="train a preset (FAMILY/CONFIG; see `zoo list --presets`); rerun to resume",
        description="Train a preset with the shared driver and save a checkpoint. Training checkpoints go to "
        "WORKDIR: rerunning the same command resumes (only --steps may grow); --export DIR writes the newest "
        "of them as a checkpoint without training.",
        allow_abbrev=False,
    )
    p.add_argument("preset")
    p.add_argument("--steps", type=int, help="total steps (default: the preset's)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int, help="initialisation, noise and data-order seed (default 0)")
    p.add_argument("--checkpoint-every", type=int, metavar="N", help="steps between training checkpoints")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a model config field (e.g. ngf=32, steps_per_level=5); repeatable")
    p.add_argument("--init-from", metavar="NAME", help="fine-tune from this model's weights (and EMA)")
    p.add_argument("--workdir", help="training checkpoints + metrics.jsonl (default runs/FAMILY-CONFIG)")
    p.add_argument("--out", metavar="DIR", help="where to save the final checkpoint (default WORKDIR/model)")
    p.add_argument("--export", metavar="DIR",
                   help="train nothing: write the newest training checkpoint of WORKDIR (raw + EMA) to DIR")
    p.add_argument("--name", help="model name recorded in the checkpoint (default: the folder's name)")
    p.add_argument("--distributed", action="store_true", help="multi-host: call jax.distributed.initialize() first")
    p.add_argument("--cpu-devices", type=int, default=None, metavar="N",
                   help="on CPU, train data-parallel over N devices (e.g. the core count; the batch must divide)")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("evaluate", help="evaluate a model on its test set; print JSON metrics")
    p.add_argument("name")
    p.add_argument("--dataset", help="data set (default: the one the model was trained on)")
    p.add_argument("--split", default="test")
    p.add_argument(
        "--metric",
        action="append",
        choices=["default", "fid", "kid"],
        default=None,
        help="'default' (the family's metrics), 'fid'/'kid' (image models); repeatable",
    )
    p.add_argument("-n", type=int, default=None, help="evaluate on the first N examples / N samples")
    p.add_argument(
        "--reference-n",
        type=int,
        default=None,
        help="FID/KID: use a fixed random subset of N reference images (default: the whole split)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weights", choices=["ema", "raw"], default=None)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="evaluate under a changed config field, same weights (e.g. iw_samples=100, ais_steps=3000, "
                   "steps_per_level=5); repeatable")
    p.add_argument("--record", action="store_true", help="record the metrics (and this command) in config.json")
    p.add_argument("--offline", action="store_true", default=None)
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("push", help="publish a checkpoint with its card to the Hugging Face Hub")
    p.add_argument("name", help="registered name or folder")
    p.add_argument("--repo-id", required=True, metavar="ORG/NAME")
    p.add_argument("--revision", default=None, help="branch to commit to (default main)")
    p.add_argument("--private", action="store_true")
    p.add_argument("--message", default=None)
    p.add_argument("--assets-dir", default=None, metavar="DIR",
                   help="folder holding the images the card links to but the checkpoint lacks (e.g. cards/)")
    p.set_defaults(func=_cmd_push)

    add_convert_parser(sub)  # zoo convert FORMAT ... (zoo/_convert.py)
    return parser


def compilation_cache_dir() -> Path | None:
    """Where the command line keeps JAX's persistent compilation cache: ``jax/`` in zoo's cache
    folder (`zoo._io.cache_dir`), so a second ``zoo sample`` loads the compiled sampler instead of
    compiling it again. None (no cache) when ``ZOO_COMPILATION_CACHE`` is 0/false/no/off, or when
    ``JAX_COMPILATION_CACHE_DIR`` names a folder already (JAX then uses that one)."""
    from ._io import cache_dir

    if os.environ.get("ZOO_COMPILATION_CACHE", "").strip().lower() in ("0", "false", "no", "off"):
        return None
    if os.environ.get("JAX_COMPILATION_CACHE_DIR", "").strip():
        return None
    return cache_dir() / "jax"


def _use_compilation_cache() -> None:
    folder = compilation_cache_dir()
    if folder is not None:
        import jax

        jax.config.update("jax_compilation_cache_dir", str(folder))


def main(argv: list[str] | None = None) -> int:
    """Run the command line `argv` (default ``sys.argv[1:]``); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    _use_compilation_cache()
    args.argv = argv  # recorded as the command that wrote a checkpoint or a metric
    if getattr(args, "metric", "unset") is None:
        args.metric = ["default"]
    try:
        return int(args.func(args) or 0)
    except ZooError as e:
        print(f"zoo: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("zoo: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
