"""Damaged copies of image files (``tnet_tf.tools.damage``), to check that
a reader or a pipeline survives them.

  python -m tnet_tf.cli.damage --output=DIR FILE...

Prints each copy's path and what was done to it.
"""
from __future__ import annotations

from typing import Sequence

from absl import app
from absl import flags

from tnet_tf.tools import damage


def define_flags() -> None:
  flags.DEFINE_string("output", "damaged", "Folder of the damaged copies.")


def main(argv: Sequence[str]) -> None:
  if len(argv) < 2:
    raise app.UsageError("no FILE given")
  for path in argv[1:]:
    try:
      copies = damage.damage(path, flags.FLAGS.output)
    except (OSError, ValueError) as err:
      raise SystemExit(f"error: {path}: {err}") from None
    for target, what in copies:
      print(f"{target}\t{what}")


if __name__ == "__main__":
  define_flags()
  app.run(main)
