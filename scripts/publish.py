"""Publish bundled checkpoints (weights + config.json + model card) to the Hugging Face Hub.

    python scripts/publish.py --org stein-zoo                 # every bundled model
    python scripts/publish.py --org stein-zoo ncsn-mnist      # one
    HF_TOKEN=... ZOO_HF_ENDPOINT=https://huggingface.co python scripts/publish.py --org ORG

Prints each model's pinned ``hf://ORG/NAME@SHA`` URI: put the SHA in the model's
`ModelEntry(revision=...)` so `zoo.load(NAME)` resolves to exactly that upload when the
checkpoint is not bundled. The sample grids a card links to are uploaded beside it from
``cards/``.
"""

import argparse
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import zoo  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*")
    parser.add_argument("--org", required=True)
    parser.add_argument("--private", action="store_true")
    args = parser.parse_args()
    names = args.names or [n for n in zoo.list_models() if zoo.bundled_path(n) is not None]
    for name in names:
        path = zoo.bundled_path(name)
        if path is None:
            print(f"{name}: not bundled, skipped", file=sys.stderr)
            continue
        sha = zoo.push(
            path, f"{args.org}/{name}", private=args.private, commit_message=f"Upload {name}", assets_dir=ROOT / "cards"
        )
        print(f"{name}: hf://{args.org}/{name}@{sha}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
