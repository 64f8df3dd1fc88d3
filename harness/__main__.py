"""Bring a stack up or down on the local Docker engine with the realizer.

python -m harness up   --config tests/live/stacks/live.yaml [--outputs outputs.json]
python -m harness down --config tests/live/stacks/live.yaml [--volumes]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harness import realizer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="create or converge the stack; print (and write) its outputs")
    up.add_argument("--config", type=Path, required=True, help="a Pulumi.<stack>.yaml-style file")
    up.add_argument("--outputs", type=Path, help="write the stack outputs here as JSON")
    down = commands.add_parser("down", help="remove every container and network of the stack")
    down.add_argument("--config", type=Path, required=True)
    down.add_argument("--volumes", action="store_true", help="also remove the stack's volumes (its data)")
    args = parser.parse_args(argv)

    if args.command == "up":
        result = realizer.up(args.config)
        for line in result.leftovers_removed:
            print(f"removed leftover {line}", file=sys.stderr)
        for key in result.created:
            print(f"+ {key}", file=sys.stderr)
        for rename in result.renamed:
            print(f"~ {rename}", file=sys.stderr)
        for key in result.updated:
            print(f"~ {key} (updated in place)", file=sys.stderr)
        for key in result.replaced:
            print(f"+- {key}", file=sys.stderr)
        for key in result.deleted:
            print(f"- {key}", file=sys.stderr)
        for warning in result.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        text = json.dumps(result.outputs, indent=2, sort_keys=True)
        if args.outputs:
            args.outputs.write_text(text + "\n")
        print(text)
        return 0
    for line in realizer.down(args.config, volumes=args.volumes):
        print(f"removed {line}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
