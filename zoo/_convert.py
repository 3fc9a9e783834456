"""``zoo convert``: other libraries' checkpoints written as zoo checkpoints.

    zoo convert ncsn-official logs/cifar10/checkpoint_300000.pth --out ncsnv2-cifar10

One subcommand per source format; each writes a normal zoo checkpoint folder (config.json, Orbax weights, card) that
`zoo.load`, ``zoo sample``, ``zoo evaluate`` and fine-tuning use like any other.
"""

from __future__ import annotations

import argparse
import shlex


def _cmd_ncsn_official(args: argparse.Namespace) -> int:
    from ._cli import _overrides  # the --set parser `zoo train` / `zoo sample` use
    from .ncsn import convert_official

    words = ["zoo", "convert", "ncsn-official", args.path, "--out", args.out]
    words += (["--name", args.name] if args.name else []) + (["--weights", args.weights] if args.weights else [])
    words += [w for pair in args.set for w in ("--set", pair)]
    command = " ".join(shlex.quote(str(w)) for w in words)
    path = convert_official(
        args.path, args.out, name=args.name, weights=args.weights, config=_overrides(args.set) or None,
        overwrite=args.overwrite, command=command,
    )
    print(path)
    return 0


def add_convert_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``zoo convert FORMAT ...`` to the CLI's subcommands."""
    p = sub.add_parser("convert", help="convert another library's checkpoint into a zoo checkpoint folder")
    formats = p.add_subparsers(dest="format", required=True, metavar="FORMAT")
    q = formats.add_parser(
        "ncsn-official",
        help="an official NCSN (ermongroup/ncsn) or NCSNv2 (ermongroup/ncsnv2) PyTorch checkpoint (torch not needed)",
        description="Convert an official NCSN / NCSNv2 checkpoint (a .pth, or the run folder holding checkpoint*.pth "
        "and config.yml) into a zoo checkpoint. The architecture, ngf, channels and levels come from the weights, "
        "the image size, noise range and sampler from config.yml; pass what is missing with --set.",
    )
    q.add_argument("path", help="checkpoint*.pth, or the run folder holding it and config.yml")
    q.add_argument("--out", required=True, help="the zoo checkpoint folder to write")
    q.add_argument("--name", default=None, help="the checkpoint's name (default: the --out folder's name)")
    q.add_argument("--weights", choices=["ema", "raw"], default=None,
                   help="write only the EMA or only the raw weights (default: both, where the file has EMA weights)")
    q.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a config field the file does not give, e.g. image_size=32 (repeatable)")
    q.add_argument("--overwrite", action="store_true", help="replace an existing folder at --out")
    q.set_defaults(func=_cmd_ncsn_official)
