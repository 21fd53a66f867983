"""ImageNet-2012 is prepared by TFDS's own `imagenet2012` builder.

This module only checks the manual dir first: without the check, TFDS fails
on a missing validation tar with a TensorFlow `NotFoundError`, on an empty
dir with an `AssertionError`, and with a missing train tar it quietly builds
a dataset that has no train split.
"""
import os

from etils import epath


def check_manual_dir(manual_dir: epath.PathLike) -> None:
  """Raises FileNotFoundError unless both ILSVRC-2012 tars are in manual_dir.

  The test tar is optional (TFDS then builds a `test` split without labels).
  """
  manual_dir = epath.Path(manual_dir)
  required = ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar")
  missing = [name for name in required if not (manual_dir / name).exists()]
  if not missing:
    return
  raise FileNotFoundError(
      f"ImageNet-2012 manual dir {os.fspath(manual_dir)} is missing "
      f"{' and '.join(missing)}. It must hold the tars from "
      "https://image-net.org/download-images as downloaded (not extracted):\n"
      "  ILSVRC2012_img_train.tar  (138 GiB: 1,000 tars n01440764.tar ... "
      "n15075141.tar, each holding n01440764_<k>.JPEG ...)\n"
      "  ILSVRC2012_img_val.tar    (6.3 GiB: 50,000 files "
      "ILSVRC2012_val_00000001.JPEG ... ILSVRC2012_val_00050000.JPEG)\n"
      "  ILSVRC2012_img_test.tar   (optional)")
