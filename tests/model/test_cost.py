"""MACs counted on the traced graph, checked by hand."""
import tf_keras as keras

from tnet_tf.model import cost


def test_graph_macs_of_a_dense_layer_by_hand():
  dense = keras.layers.Dense(7)
  conv = keras.layers.Conv2D(4, 3, padding="same")
  dw = keras.layers.DepthwiseConv2D(3, padding="valid")
  assert cost.count_macs(dense, [2, 5]) == 2 * 5 * 7
  assert cost.count_macs(conv, [1, 6, 6, 3]) == 6 * 6 * 4 * 3 * 3 * 3
  assert cost.count_macs(dw, [1, 6, 6, 3]) == 4 * 4 * 3 * 3 * 3
