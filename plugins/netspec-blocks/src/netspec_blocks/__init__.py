"""netspec-blocks: ResNet, squeeze-and-excitation and MobileNetV2 blocks as netspec layer types.

The layer types live in :mod:`netspec_blocks.layers`, which netspec loads through the
``netspec`` entry point; nothing needs importing by hand. Importing this package does not
import torch.
"""

from __future__ import annotations

__version__ = "0.1.0"
