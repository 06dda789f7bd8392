"""One module per experiment: its defaults (the course's hyper-parameters), data and models.

Each module defines NAME, VARIANT_FLAG, VARIANTS, DEFAULTS, `load_data(config)`,
`make_model(config, variant)` and `objective(variant)`.
"""

from experiments import lenet, linear

EXPERIMENTS = {module.NAME: module for module in (lenet, linear)}
