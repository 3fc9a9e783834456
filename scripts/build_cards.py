"""Put each hand-written card body (cards/NAME.md) into its bundled checkpoint's README.md.

    python scripts/build_cards.py [NAME ...]

The checkpoint's README.md is the Hub model card: YAML front matter generated from
config.json (license, tags, data sets, the measured metrics as model-index eval results)
followed by the body from cards/NAME.md. Weights are never touched.
"""

import argparse
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import zoo  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="default: every bundled model with a card")
    args = parser.parse_args()
    names = args.names or [n for n in zoo.list_models() if (ROOT / "cards" / f"{n}.md").is_file()]
    for name in names:
        path = zoo.bundled_path(name)
        card = ROOT / "cards" / f"{name}.md"
        if path is None or not card.is_file():
            print(f"skip {name}: no bundled checkpoint or no {card}", file=sys.stderr)
            continue
        zoo.annotate(path, card_body=card.read_text())
        print(f"{name}: {path / 'README.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
