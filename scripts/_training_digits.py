"""The training digits of the shipped generative models (imported by the make_*_checkpoint scripts).

``training_digits("mnist", root)``: the official MNIST training images found in
``root`` (the project's offline copy holds the first 24,345 of the 60,000; read
without downloading), **minus the 1,000 embedded "test" digits** that Chapters
2 and 3 evaluate the shipped models on in the small profile (those are official
training digits too, inside the first 5,848: see ``course_lib.data``), so that
the chapters' test digits stay held out. ``training_digits("embedded")``: the
4,000 embedded training digits.
"""

from __future__ import annotations

import warnings

import numpy as np

from course_lib import data


def training_digits(source: str, root: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 28, 28), labels int64 (N,)) in the file's order; see the module docstring."""
    if source == "embedded":
        return data.load_mnist("train", source="embedded")
    with warnings.catch_warnings():  # the offline copy holds a prefix of the training file (verify=False)
        warnings.simplefilter("ignore", UserWarning)
        images, labels = data.load_mnist("train", source="mnist", root=root, download=False, verify=False)
    held_out, _ = data.load_mnist("test", source="embedded")
    held = {img.tobytes() for img in held_out}
    keep = np.array([img.tobytes() not in held for img in images])
    if len(images) - int(keep.sum()) != len(held_out):
        raise RuntimeError(f"expected to find the {len(held_out)} embedded test digits among the training images, "
                           f"found {len(images) - int(keep.sum())}")
    return images[keep], labels[keep]
