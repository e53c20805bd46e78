"""Command line: ``scgan-cluster cluster | predict | demo`` (or ``python -m scgan_cluster ...``).

The parser and the commands live in :mod:`scgan_cluster._cli`; ``scgan-cluster --help`` lists
them and ``scgan-cluster COMMAND --help`` their options.
"""

from __future__ import annotations

import sys

from scgan_cluster._cli import main

__all__ = ["main"]


if __name__ == "__main__":
    sys.exit(main())
