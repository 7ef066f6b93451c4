"""Built-in dataset types, each a plugin module registered like a third-party one.

The modules import nothing heavy at import time (torch, numpy and scikit-learn are imported
inside the loaders), so listing them in the plugin manager costs nothing until training starts.
"""

BUILTIN_DATASET_PLUGINS = (
    "netspec.datasets.digits",
    "netspec.datasets.synthetic",
    "netspec.datasets.shapes",
    "netspec.datasets.arrays",
    "netspec.datasets.vision",
)
