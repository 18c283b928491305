"""One oras-py (PyPI ``oras``) push or pull in a process of its own, so run.py can time it and read its peak RSS.

Usage: ``python oras_worker.py push HOST TARGET FILE`` or ``python oras_worker.py pull HOST TARGET OUTDIR``, where
TARGET is ``HOST/NAME:TAG``. Plain http (``insecure=True``), no credentials.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("action", choices=("push", "pull"))
    parser.add_argument("host")
    parser.add_argument("target")
    parser.add_argument("path")
    args = parser.parse_args(argv)

    from oras.client import OrasClient  # imported here: its import time belongs to the measured run

    client = OrasClient(hostname=args.host, insecure=True)
    if args.action == "push":
        response = client.push(target=args.target, files=[args.path], disable_path_validation=True, quiet=True)
        return 0 if response.status_code in (200, 201) else 1
    files = client.pull(target=args.target, outdir=args.path)
    return 0 if files else 1


if __name__ == "__main__":
    sys.exit(main())
