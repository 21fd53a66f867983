"""The paper's cost rows next to this implementation's
(``tnet_tf.tools.profile``).

  python -m tnet_tf.cli.profile [--config=imagenet,fmow] [--json]
"""
from __future__ import annotations

import json
import sys

from absl import app
from absl import flags

from tnet_tf.tools import profile

FLAGS = flags.FLAGS


def define_flags() -> None:
  """Defined when run as a command (not on import: commands share names)."""
  flags.DEFINE_list("config", list(profile.CONFIGS),
                    "Configurations to profile: imagenet, fmow, bagnet77, "
                    "efficientnet-b0..b7.")
  flags.DEFINE_list("input_size", None,
                    "Square input sizes for the baseline configurations "
                    "(default: the paper's).")
  flags.DEFINE_bool("json", False, "Print a JSON list instead of a table.")


def main(argv):
  del argv
  try:
    sizes = [int(s) for s in FLAGS.input_size] if FLAGS.input_size else None
  except ValueError as err:
    raise app.UsageError(f"--input_size takes integers: {err}")
  known = set(profile.CONFIGS) | {f"efficientnet-b{i}" for i in range(8)}
  unknown = [c for c in FLAGS.config if c not in known]
  if unknown:
    raise app.UsageError(f"unknown --config {unknown}; known: "
                         f"{sorted(known)}")
  rows = profile.paper_rows(FLAGS.config, sizes)
  if FLAGS.json:
    json.dump(rows, sys.stdout, indent=1)
    print()
  else:
    print(profile.format_table(rows))


def run():
  """The ``tnet-profile`` console script."""
  define_flags()
  app.run(main)


if __name__ == "__main__":
  run()
