"""Command line: ``scgan-cluster demo`` (or ``python -m scgan_cluster demo``)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``scgan-cluster`` command."""
    parser = argparse.ArgumentParser(
        prog="scgan-cluster", description="ClusterGAN for single-cell data."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="cluster scanpy's bundled pbmc68k_reduced, compare with leiden, write a UMAP PNG",
    )
    demo.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    demo.add_argument(
        "--max-iter",
        type=int,
        default=None,
        help="generator iterations per replica (default: the recipe's, 4,000)",
    )
    demo.add_argument("--seed", type=int, default=0, help="random_state (default: 0)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from ._demo import run_demo

        run_demo(args.out, max_iter=args.max_iter, random_state=args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
