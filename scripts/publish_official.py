"""Convert a downloaded official NCSN / NCSNv2 checkpoint and publish it to the Hub with its card.

    python scripts/publish_official.py ncsnv2-cifar10 exp/logs/cifar10            # convert + push
    python scripts/publish_official.py ncsnv2-cifar10 exp/logs/cifar10 --dry-run  # convert + check only

NAME is a registered official model (`zoo list 'ncsn*-song2019'`, `zoo list 'ncsnv2-*'`); PATH is the authors' run
folder (checkpoint*.pth + config.yml) or the .pth itself. The converted checkpoint must match the model's preset
(network, ngf, image size, noise ladder, sampler): a wrong file is refused before anything is published. The card is
`cards/NAME.md` (source, authors, license, the paper's numbers, the conversion command, the sampler). Uses the public
API only: `zoo.ncsn.convert_official`, `zoo.load_bundle`, `zoo.push`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import zoo
import zoo.ncsn


CARDS = Path(__file__).resolve().parents[1] / "cards"
CHECKED = ("variant", "image_size", "channels", "ngf", "sigma_begin", "sigma_end", "num_scales", "steps_per_level",
           "step_lr", "denoise")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help="the registered official model, e.g. ncsnv2-cifar10")
    p.add_argument("path", help="the downloaded run folder (checkpoint*.pth + config.yml) or .pth")
    p.add_argument("--out", default=None, help="keep the converted checkpoint here (default: a temporary folder)")
    p.add_argument("--repo-id", default=None, help="Hub repository (default: the registry's hub_repo)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a config field the file does not give (without config.yml), e.g. image_size=32")
    p.add_argument("--dry-run", action="store_true", help="convert and check, do not push")
    args = p.parse_args(argv)

    entry = zoo.model_info(args.name)
    if entry.family != "ncsn" or entry.preset is None or entry.hub_repo is None:
        raise SystemExit(f"{args.name} is not an official NCSN model of the registry")
    card = CARDS / f"{args.name}.md"
    if not card.is_file():
        raise SystemExit(f"no card at {card}")
    settings = {}
    for pair in args.set:
        key, _, value = pair.partition("=")
        settings[key] = json.loads(value)
    command = f"zoo convert ncsn-official {Path(args.path).name} --out {args.name}"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out) if args.out else Path(tmp) / args.name
        zoo.ncsn.convert_official(args.path, out, name=args.name, config=settings or None,
                                  card_body=card.read_text(encoding="utf-8"), overwrite=True, command=command)
        bundle = zoo.load_bundle(out)
        want = zoo.get_preset(entry.preset).config
        wrong = {k: (getattr(bundle.config, k), getattr(want, k)) for k in CHECKED
                 if getattr(bundle.config, k) != getattr(want, k)}
        if wrong:
            raise SystemExit(f"{args.path} is not {args.name}: (file, expected) differ in {wrong}")
        print(f"converted {args.path} -> {out} ({zoo.num_params(bundle.model) / 1e6:.1f} M params, "
              f"EMA: {bundle.ema is not None})")
        if args.dry_run:
            print("dry run: not pushed")
            return 0
        repo = args.repo_id or entry.hub_repo
        sha = zoo.push(out, repo, commit_message=f"{args.name}: the authors' weights, converted ({command})")
        print(f"pushed {args.name} to hf://{repo}@{sha}; pin it as the registry's revision")
    return 0


if __name__ == "__main__":
    sys.exit(main())
