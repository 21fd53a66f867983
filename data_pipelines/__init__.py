"""TFDS builders for the paper's datasets, from manually placed raw files.

Importing a builder module registers it with TFDS: ``fmow_rgb``,
``cub2011`` and ``nabirds`` are ours; ImageNet-2012 uses TFDS's own
``imagenet2012``. ``python -m data_pipelines.build`` prepares any of them.
"""
