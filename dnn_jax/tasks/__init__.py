"""What each task knows: its data, model, objective and figures, one module each.

A training task module defines NAME, VARIANT_SETTING (the setting that chooses its variants),
VARIANT_HELP, VARIANTS, OPTIMIZERS (those it accepts), TRAIN_ERROR (whether each epoch is also
evaluated on the training set), CLASS_NAMES (what each class index is), `load_data(config)`,
`make_model(config, variant)`, `objective(variant)` and `figures(shown, train_split, title)`:
the pictures of what its models learned ({file name: draw(path)}, the names in FIGURES), from
each variant's `plots.Shown` models. The theory task checks results instead of training (`theory.run`).
"""

from __future__ import annotations

from types import ModuleType

from dnn_jax.tasks import lenet, lenet1998, linear, theory

TRAINING: dict[str, ModuleType] = {module.NAME: module for module in (lenet, lenet1998, linear)}
TASKS: dict[str, ModuleType] = {**TRAINING, theory.NAME: theory}
BOTH = 'both'  # the variant choice that trains every variant


def by_variant_setting() -> dict[str, tuple[ModuleType, ...]]:
  """The training tasks of each variant setting (the course's and the paper's LeNet share c3)."""
  sharing: dict[str, tuple[ModuleType, ...]] = {}
  for module in TRAINING.values():
    sharing[module.VARIANT_SETTING] = (*sharing.get(module.VARIANT_SETTING, ()), module)
  return sharing
