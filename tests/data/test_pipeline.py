"""The skip counter of the one input pipeline: a clean split counts 0 however
it is read; an unreadable record counts once per pass that reaches the end."""
import pytest
import tensorflow as tf

from tnet_tf.data import pipeline


def _dataset(bad=(), n=10, training=False):
  """Records 0..n-1 whose 'image' is the record; the ones in ``bad`` fail
  to decode."""
  counter = pipeline.SkipCounter("test")

  def decoder(record, seed):
    del seed
    checks = [tf.debugging.assert_none_equal(record, tf.constant(b, tf.int64))
              for b in bad]
    with tf.control_dependencies(checks):
      return tf.identity(record), tf.constant(0)

  ds = pipeline.build_pipeline(tf.data.Dataset.range(n), decoder, "test",
                               training=training, seed=0,
                               shuffle_buffer=1, counter=counter)
  return ds, counter


def test_clean_split_read_partly_then_fully_counts_nothing():
  ds, counter = _dataset()
  assert [int(x) for x, _ in ds.take(3)] == [0, 1, 2]
  assert [int(x) for x, _ in ds] == list(range(10))
  assert counter.skipped == 0


@pytest.mark.parametrize("bad", [(4,), (999,), (0, 999), (3, 4, 5)])
def test_unreadable_records_count_once_per_full_pass(bad):
  ds, counter = _dataset(bad, n=1000)
  list(ds.take(3))  # abandoned long before the end: counts nothing
  assert counter.skipped == 0
  for passes in (1, 2):
    assert [int(x) for x, _ in ds] == [i for i in range(1000)
                                       if i not in bad]
    assert counter.skipped == passes * len(bad)


def test_two_iterators_at_once_count_their_own_passes():
  ds, counter = _dataset((2,))
  first, second = iter(ds), iter(ds)
  seen = [next(first), next(second), next(first), next(second)]
  assert [int(x) for x, _ in seen] == [0, 0, 1, 1]
  assert len(list(first)) == 7 and len(list(second)) == 7
  assert counter.skipped == 2


def test_training_stream_counts_each_gap_as_it_goes():
  ds, counter = _dataset((5,), training=True)
  values = [int(x) for x, _ in ds.take(27)]  # three epochs
  assert values.count(5) == 0 and len(values) == 27
  assert counter.skipped == 3
