"""Writes the faces-in-clutter image folder (``tnet_tf.data.faces``).

  python -m tnet_tf.cli.faces OUT_DIR

then train on it as any folder: ``python -m tnet_tf.experiments.folder
--data_dir=OUT_DIR ...``.
"""
from __future__ import annotations

import sys

from tnet_tf.data import faces


def main(argv: list[str]) -> None:
  if len(argv) != 2:
    raise SystemExit("usage: python -m tnet_tf.cli.faces OUT_DIR")
  written = faces.write_folder(argv[1])
  print(f"{len(written['boxes'])} canvases in {argv[1]}")


if __name__ == "__main__":
  main(sys.argv)
