"""Where the files the project ships are: in a checkout, the folders beside the package
(`data/mnist`, `experiments`); in an installed wheel, copies inside the package
(`pyproject.toml` maps them there)."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
# folder in a checkout -> its name inside an installed package
_IN_PACKAGE = {'data/mnist': 'mnist', 'experiments': 'experiments'}


def folder(in_checkout: str) -> Path:
  """The shipped folder `in_checkout` ('data/mnist' or 'experiments'), wherever it is."""
  installed = _PACKAGE / _IN_PACKAGE[in_checkout]
  return installed if installed.is_dir() else _PACKAGE.parent / in_checkout
