"""Marking arithmetic that must stay float32 in an int8 model.

Inside TNet's learned modules, ops built under ``keep_float()`` are left in
float when ``tnet_tf.inference.tflite`` quantizes to int8 (coordinates, sinusoids,
normalised scores that feed top-k or a softmax with masking offsets); the
rest of a module runs in int8. TNet's glue outside the modules (box
geometry, crops, feature averaging) stays float whole.
"""
import tensorflow as tf

KEEP_FLOAT = "keep_float"


def keep_float():
  """Name scope of ops that int8 conversion keeps float."""
  return tf.name_scope(KEEP_FLOAT)
