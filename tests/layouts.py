"""Where each value of a record written before the configuration was
grouped (commit 5ddfa56: everything on model, data, train and loss) lives
in the grouped layout. Written out here, not taken from tnet_tf.config, so
that comparisons through it check the library's own mapping."""

MOVED = {
    **{("model", name): ("model", "policy", name)
       for name in ("selection", "location_scale", "location_gradient",
                    "overlap_suppression")},
    **{("loss", name): ("exploration", name)
       for name in ("random_steps", "anneal_steps", "scan_steps")},
    **{("train", name): ("runtime", name)
       for name in ("strategy", "tpu", "mixed_precision", "jit_compile",
                    "deterministic", "checkpoint_every", "keep_checkpoints",
                    "log_every", "summaries")},
}
# the same value as model.backbone_kwargs["weights"], which the flat
# layout also held (and which nothing read)
DROPPED = {("train", "backbone_weights")}
# dicts that are values of one field, not groups
VALUES = {"backbone_kwargs", "options"}


def leaves(record: dict, prefix: tuple = ()) -> dict:
  """{path: value} of every field of a record."""
  out = {}
  for key, value in record.items():
    if isinstance(value, dict) and key not in VALUES:
      out.update(leaves(value, prefix + (key,)))
    else:
      out[prefix + (key,)] = value
  return out


def at_new_places(flat: dict) -> dict:
  """The leaves of a flat record, each at its path in the grouped layout
  (the dropped ones left out)."""
  return {MOVED.get(path, path): value
          for path, value in leaves(flat).items() if path not in DROPPED}
