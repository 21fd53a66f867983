"""Normal forms and checks of what users pass in (one module for all)."""
import numpy as np
import pytest
import tensorflow as tf

from tnet_tf.model import inputs


def test_counts_per_level():
  assert inputs.features_per_level([2, 3]) == [1, 2, 6]
  assert inputs.total_locations([2, 3]) == 8
  assert inputs.total_locations([]) == 0


def test_trailing_zeros_and_padding():
  assert inputs.strip_trailing_zeros([2, 1, 0, 0]) == (2, 1)
  assert inputs.strip_trailing_zeros([0]) == ()
  assert inputs.pad_locations([2], 4) == [2, 0, 0]
  assert inputs.pad_locations([], 1) == []
  with pytest.raises(ValueError, match="asks for 3 levels"):
    inputs.pad_locations([1, 1], 2)


def test_python_locations():
  assert inputs.check_locations(3, 2, 3) == (3,)
  assert inputs.check_locations(np.int64(2), 2, 3) == (2,)
  assert inputs.check_locations([2, 0], 3, 3) == (2,)
  with pytest.raises(ValueError, match=r"level 3 must be in \[0, 4\], got 5"):
    inputs.check_locations([1, 5], 3, 2)
  with pytest.raises(ValueError, match="no regions to refine"):
    inputs.check_locations([0, 1], 3, 3)
  with pytest.raises(TypeError, match="list of ints"):
    inputs.check_locations("2", 3, 3)


def test_location_tensor_checks_in_the_graph():
  check = tf.function(lambda k: tf.stack(inputs.check_location_tensor(
      k, 3, 2)), input_signature=[tf.TensorSpec([None], tf.int32)])
  np.testing.assert_array_equal(check(tf.constant([2, 1])), [2, 1])
  with pytest.raises(tf.errors.InvalidArgumentError, match="<= 4"):
    check(tf.constant([5, 1]))
  with pytest.raises(tf.errors.InvalidArgumentError, match=">= 0"):
    check(tf.constant([-1, 1]))
  with pytest.raises(tf.errors.InvalidArgumentError, match="give 2 values"):
    check(tf.constant([1]))


def test_images():
  assert inputs.check_images(np.zeros((1, 4, 5, 1), np.uint16)).shape == (
      1, 4, 5, 1)
  with pytest.raises(ValueError, match="rank 4"):
    inputs.check_images(np.zeros((4, 5, 3)))
  with pytest.raises(TypeError, match="dtype must be one of"):
    inputs.check_images(np.zeros((1, 4, 5, 3), np.complex64))
  with pytest.raises(tf.errors.InvalidArgumentError, match="NaN or Inf"):
    inputs.check_images(np.full((1, 2, 2, 3), np.inf, np.float32),
                        check_numerics=True)
