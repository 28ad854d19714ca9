"""The tensor-schedule environment's train/test splits.

``tensor-shapes/v1``: matmuls and convolutions of some shapes to train on; other shapes of both
families, and the Reasoning Compiler's FLUX convolution at a small size, held out. A workload's
source is its family and shape. The action and observation layout is fixed (``max_knobs``,
``max_sketches``) so that one policy acts on every workload of the split.
"""

from __future__ import annotations

from optarena.envs.splits import Split

TRAIN = ("matmul-64", "matmul-128", "matmul-64x128x256", "matmul-128x32x64", "conv2d-6-16",
         "conv2d-8-32")
TEST = ("matmul-96", "matmul-192x64x128", "conv2d-10-16", "flux-conv:size=4")

SPLITS = (
    Split("tensor-shapes", 1, "tensor_schedule",
          "matmul and conv2d shapes to train on; other shapes and a FLUX convolution held out",
          divide=lambda: (list(TRAIN), list(TEST)), group=lambda workload: workload,
          kwargs={"max_knobs": 16, "max_sketches": 4}),
)
