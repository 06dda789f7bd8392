"""MNIST from the shipped IDX files (md5-checked) and from TFDS: mocked, and prepared for real
from the IDX files served on 127.0.0.1 (no internet)."""

import functools
import gzip
import http.server
import importlib.util
import os
import re
import shutil
import threading

import numpy as np
import pytest

from dnn_jax.core import data


@pytest.fixture
def tfds():
  """tensorflow-datasets, where it is installed (it is not on every machine: a GPU one's)."""
  return pytest.importorskip('tensorflow_datasets')


def test_real_mnist_facts(mnist_train, mnist_test):
  assert mnist_train.images.shape == (data.SPLIT_SIZES['train'], 28, 28, 1)
  assert mnist_test.images.shape == (data.SPLIT_SIZES['test'], 28, 28, 1)
  assert mnist_train.images.dtype == np.uint8 and mnist_train.labels.dtype == np.int32
  np.testing.assert_array_equal(np.bincount(mnist_train.labels),
                                [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949])
  np.testing.assert_array_equal(np.bincount(mnist_test.labels),
                                [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
  assert mnist_train.images.mean() / 255 == pytest.approx(0.1307, abs=1e-4)


def test_binary_4_vs_9_counts_and_labels(mnist_train, mnist_test):
  for split, original in (('train', mnist_train), ('test', mnist_test)):
    binary = data.binary_4_vs_9(original)
    assert len(binary.labels) == data.BINARY_SPLIT_SIZES[split]
    assert set(np.unique(binary.labels)) == {-1, 1}
    fours = original.images[original.labels == 4]
    np.testing.assert_array_equal(binary.images[binary.labels == -1], fours)
  assert data.BINARY_SPLIT_SIZES == {'train': 11_791, 'test': 1_991}


def test_first_takes_a_prefix(mnist_train):
  head = data.first(mnist_train, 10)
  np.testing.assert_array_equal(head.labels, mnist_train.labels[:10])
  assert data.first(mnist_train, 0) is mnist_train


@pytest.fixture
def copied_mnist(tmp_path, mnist_dir):
  for name in data.IDX_MD5:
    shutil.copy(f'{mnist_dir}/{name}', tmp_path / name)
  return tmp_path


def test_missing_folder_and_file(tmp_path, copied_mnist):
  with pytest.raises(data.DatasetError, match='folder not found.*--mnist_dir'):
    data.load_idx(tmp_path / 'nowhere', 'test')
  (copied_mnist / 't10k-labels-idx1-ubyte.gz').unlink()
  with pytest.raises(data.DatasetError, match='t10k-labels-idx1-ubyte.gz.*--mnist_dir'):
    data.load_idx(copied_mnist, 'test')


def test_truncated_file_is_reported(copied_mnist):
  path = copied_mnist / 't10k-images-idx3-ubyte.gz'
  path.write_bytes(path.read_bytes()[:100_000])
  with pytest.raises(data.DatasetError, match='truncated'):
    data.load_idx(copied_mnist, 'test')


def test_wrong_contents_fail_the_md5(copied_mnist):
  path = copied_mnist / 't10k-labels-idx1-ubyte.gz'
  raw = bytearray(gzip.decompress(path.read_bytes()))
  raw[-1] = (raw[-1] + 1) % 10  # one label changed
  path.write_bytes(gzip.compress(bytes(raw)))
  with pytest.raises(data.DatasetError, match='corrupt: md5'):
    data.load_idx(copied_mnist, 'test')


def test_tfds_source_gives_the_same_interface(tfds):
  with tfds.testing.mock_data(num_examples=20, policy=tfds.testing.MockPolicy.USE_CODE):
    split = data.load_mnist('train', mnist_dir='')
  assert split.images.shape == (20, 28, 28, 1) and split.images.dtype == np.uint8
  assert split.labels.shape == (20,) and split.labels.dtype == np.int32
  assert split.labels.min() >= 0 and split.labels.max() <= 9


def test_tfds_failure_is_one_clear_error(tmp_path, monkeypatch, tfds):
  def refuse(*args, **kwargs):
    raise ConnectionError('no network\nlong traceback text')
  monkeypatch.setattr(tfds, 'data_source', refuse)
  with pytest.raises(data.DatasetError, match='tensorflow-datasets could not provide mnist.*'
                     'no network; pass --mnist_dir') as e:
    data.load_mnist('test', mnist_dir='', tfds_data_dir=str(tmp_path))
  assert '\n' not in str(e.value)


def test_shipped_readme_lists_the_md5s_the_reader_checks():
  readme = (data.DEFAULT_MNIST_DIR / 'README.md').read_text()
  listed = dict(re.findall(r'`([\w-]+\.gz)` \|[^|]+\| `([0-9a-f]{32})`', readme))
  assert listed == data.IDX_MD5
  assert 'CC BY-SA 3.0' in readme and 'LeCun' in readme


@pytest.fixture
def mnist_server(mnist_dir):
  """The IDX files served over HTTP on 127.0.0.1: the URL, and the paths requested."""
  requested = []

  class Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
      requested.append(self.path)

  server = http.server.ThreadingHTTPServer(
      ('127.0.0.1', 0), functools.partial(Handler, directory=mnist_dir))
  threading.Thread(target=server.serve_forever, daemon=True).start()
  yield f'http://127.0.0.1:{server.server_port}/', requested
  server.shutdown()
  server.server_close()


@pytest.fixture
def tfds_from_local_server(monkeypatch, mnist_server, tfds):
  """TFDS's own MNIST builder, downloading from `mnist_server` instead of the internet."""
  del tfds
  from tensorflow_datasets.image_classification import mnist
  url, requested = mnist_server
  monkeypatch.setattr(mnist.MNIST, 'URL', url)
  return requested


HAS_TENSORFLOW = importlib.util.find_spec('tensorflow') is not None


@pytest.mark.skipif(not HAS_TENSORFLOW and not os.environ.get('DNN_JAX_REQUIRE_TENSORFLOW'),
                    reason='preparing with TFDS needs TensorFlow: pip install -r '
                           'requirements-tfds.txt (CI does)')
def test_tfds_prepares_mnist_equal_to_the_idx_files(tmp_path, tfds_from_local_server,
                                                      mnist_train, mnist_test):
  for split, expected in (('train', mnist_train), ('test', mnist_test)):
    got = data.load_mnist(split, mnist_dir='', tfds_data_dir=str(tmp_path))
    assert got.images.dtype == np.uint8 and got.labels.dtype == np.int32
    np.testing.assert_array_equal(got.images, expected.images)
    np.testing.assert_array_equal(got.labels, expected.labels)
  assert sorted(tfds_from_local_server) == sorted(f'/{name}' for name in data.IDX_MD5)
  assert list((tmp_path / 'mnist').glob('*/mnist-train.array_record*'))


@pytest.mark.skipif(HAS_TENSORFLOW, reason='checks the message shown where TensorFlow is absent')
def test_tfds_without_tensorflow_says_how_to_install_it(tmp_path, tfds_from_local_server):
  with pytest.raises(data.DatasetError) as e:
    data.load_mnist('test', mnist_dir='', tfds_data_dir=str(tmp_path))
  assert 'needs TensorFlow, which is not installed: pip install -r requirements-tfds.txt' in str(e.value)
  assert '\n' not in str(e.value)
