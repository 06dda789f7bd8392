"""MNIST from the four standard IDX .gz files (shipped in data/mnist) or from TFDS.

Both sources give the same arrays in the same order: `Split(images, labels)` with images
uint8 (N, 28, 28, 1) and labels int32 (N,). Images stay uint8 on the device; the training step
scales them (`scale_pixels`).
"""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from dnn_jax import shipped
from dnn_jax.errors import DatasetError

# The dataset facts, in one place.
IDX_FILES = {  # split -> (images file, labels file)
    'train': ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'),
    'test': ('t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'),
}
IDX_MD5 = {  # md5 of the uncompressed contents, as published with MNIST
    'train-images-idx3-ubyte.gz': '6bbc9ace898e44ae57da46a324031adb',
    'train-labels-idx1-ubyte.gz': 'a25bea736e30d166cdddb491f175f624',
    't10k-images-idx3-ubyte.gz': '2646ac647ad5339dbf082846283269ea',
    't10k-labels-idx1-ubyte.gz': '27ae3e4e09519cfbb04c329615203637',
}
SPLIT_SIZES = {'train': 60_000, 'test': 10_000}
BINARY_DIGITS = (4, 9)  # the linear experiment: 4 -> -1, 9 -> +1
BINARY_SPLIT_SIZES = {'train': 11_791, 'test': 1_991}
DEFAULT_MNIST_DIR = shipped.folder('data/mnist')  # found from the package: any working directory
# How uint8 pixels become the model's input, as (background, ink) values for pixels 0 and 255:
# unit, [0, 1] as torchvision's ToTensor; raw, 0..255; lecun, the 1998 paper's -0.1 to 1.175
# (mean about 0 and variance about 1 over MNIST).
PIXEL_RANGES = {'unit': (0.0, 1.0), 'raw': (0.0, 255.0), 'lecun': (-0.1, 1.175)}
TFDS_REQUIREMENTS = 'requirements-tfds.txt'  # what preparing MNIST with TFDS needs beside ours
HOW_TO_PROVIDE = (
    f'pass --mnist_dir=DIR with the four MNIST IDX .gz files ({", ".join(IDX_MD5)}; the '
    f'project ships them in {DEFAULT_MNIST_DIR}), or --mnist_dir= (empty) to use '
    'tensorflow-datasets, which downloads MNIST on a machine with internet')


class Split(NamedTuple):
  images: np.ndarray  # uint8 (N, 28, 28, 1)
  labels: np.ndarray  # int32 (N,)


def _read_idx(path: Path) -> np.ndarray:
  """The array in an IDX .gz file, after checking the md5 of its uncompressed contents."""
  try:
    raw = gzip.decompress(path.read_bytes())
  except FileNotFoundError:
    raise DatasetError(f'MNIST file not found: {path}; {HOW_TO_PROVIDE}') from None
  except (OSError, EOFError, gzip.BadGzipFile) as e:
    raise DatasetError(f'cannot read {path} ({e}): the file is truncated or not gzip; '
                       f'{HOW_TO_PROVIDE}') from None
  md5 = hashlib.md5(raw).hexdigest()
  if md5 != IDX_MD5[path.name]:
    raise DatasetError(f'{path} is corrupt: md5 of its contents is {md5}, expected '
                       f'{IDX_MD5[path.name]}; {HOW_TO_PROVIDE}')
  ndim = raw[3]  # IDX magic: 0x00 0x00 <dtype 0x08 = uint8> <number of dimensions>
  shape = np.frombuffer(raw, '>i4', count=ndim, offset=4)
  return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_idx(mnist_dir: str | os.PathLike, split: str) -> Split:
  """One split from the standard IDX .gz files in `mnist_dir`, md5-verified."""
  mnist_dir = Path(mnist_dir)
  if not mnist_dir.is_dir():
    raise DatasetError(f'MNIST folder not found: {mnist_dir}; {HOW_TO_PROVIDE}')
  images_file, labels_file = IDX_FILES[split]
  images = _read_idx(mnist_dir / images_file)
  labels = _read_idx(mnist_dir / labels_file)
  return Split(images[..., None], labels.astype(np.int32))


def load_tfds(split: str, data_dir: str | None = None) -> Split:
  """One split of TFDS `mnist` through `tfds.data_source` (no TensorFlow in this process
  once prepared), in the IDX files' order.

  On a machine with internet the first call downloads and prepares the dataset, which
  needs TensorFlow (`pip install -r requirements-tfds.txt`).
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  try:
    source = tfds.data_source('mnist', split=split, data_dir=data_dir,
                              builder_kwargs=dict(file_format='array_record'))
    examples = [source[i] for i in range(len(source))]
  except Exception as e:  # TFDS raises many types for "not there and cannot download"
    raise DatasetError(_tfds_failure(e, data_dir)) from None
  images = np.stack([ex['image'] for ex in examples]).astype(np.uint8).reshape(-1, 28, 28, 1)
  labels = np.array([ex['label'] for ex in examples], np.int32)
  if not source.dataset_info.disable_shuffling:
    order = np.argsort(_tfds_stored_order(split, len(labels)))
    images, labels = images[order], labels[order]
  return Split(images, labels)


def _tfds_stored_order(split: str, num_examples: int) -> np.ndarray:
  """The IDX index of each example as TFDS stores it: the builder keys example i by i and
  sorts the keys by their md5 salted with the split name (`tfds.core.hashing`, stable by
  TFDS's own rule: changing it would need a new major version of every dataset)."""
  from tensorflow_datasets.core import hashing  # pylint: disable=g-import-not-at-top

  hasher = hashing.Hasher(split)
  return np.argsort([hasher.hash_key(i) for i in range(num_examples)])


def _tfds_failure(error: BaseException, data_dir: str | None) -> str:
  """One line: why TFDS could not provide MNIST, and what to do."""
  cause = error
  while cause is not None and not isinstance(cause, ModuleNotFoundError):
    cause = cause.__cause__ or cause.__context__
  if cause is not None and (cause.name or '').split('.')[0] == 'tensorflow':
    reason = ('preparing MNIST with tensorflow-datasets needs TensorFlow, which is not '
              f'installed: pip install -r {TFDS_REQUIREMENTS}')
  else:
    text = str(error).strip()
    reason = text.splitlines()[0] if text else type(error).__name__
  return (f'tensorflow-datasets could not provide mnist in {data_dir or "its default data_dir"}: '
          f'{reason}; {HOW_TO_PROVIDE}')


def load_mnist(split: str, mnist_dir: str | None, tfds_data_dir: str | None = None) -> Split:
  """`split` from `mnist_dir` when given (non-empty), else from TFDS (in `tfds_data_dir`, or
  its default where empty)."""
  if split not in IDX_FILES:
    raise ValueError(f'split {split!r}: expected one of {tuple(IDX_FILES)}')
  if mnist_dir:
    return load_idx(mnist_dir, split)
  return load_tfds(split, tfds_data_dir or None)


def binary_4_vs_9(split: Split) -> Split:
  """Only digits 4 and 9, relabelled 4 -> -1 and 9 -> +1 (original order kept)."""
  negative, positive = BINARY_DIGITS
  keep = (split.labels == negative) | (split.labels == positive)
  labels = np.where(split.labels[keep] == positive, 1, -1).astype(np.int32)
  return Split(split.images[keep], labels)


def scale_pixels(images, pixel_scale: str):
  """Images of pixels 0..255 (uint8 or float, numpy or JAX) as float32 inputs on the
  `pixel_scale` of PIXEL_RANGES (unit: x / 255, raw: x, bit for bit)."""
  background, ink = PIXEL_RANGES[pixel_scale]
  return images.astype('float32') / (255.0 / (ink - background)) + background


def first(split: Split, n: int) -> Split:
  """The first `n` examples (all when n <= 0)."""
  return split if n <= 0 else Split(split.images[:n], split.labels[:n])
