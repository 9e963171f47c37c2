"""`predict --model mnist --index N | --image FILE`: one digit, sent to the served model.

`--index N` sends test image N of the pipeline's offline data (its default
parameters' test split) and prints its label beside the answer; `--image FILE`
sends any picture of a digit (PNG, JPEG...), made 28x28 grey.
"""

import argparse
from pathlib import Path

import numpy as np

from components.common.errors import InputError
from components.serving.client import NUMPY_DTYPES, Request, Signature
from pipelines.spec import parameter_defaults


def image_from_file(path: Path) -> np.ndarray:
    """A picture of one digit as MNIST draws it: 28x28, light digit on a dark ground, 0..255."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as picture:
            grey = np.asarray(picture.convert("L").resize((28, 28), Image.Resampling.LANCZOS), dtype=np.float32)
    except (OSError, UnidentifiedImageError) as error:
        raise InputError(f"--image {path}: cannot read it as an image ({error})") from error
    # A dark digit on white paper is turned around to MNIST's white-on-black.
    return 255 - grey if grey.mean() > 127 else grey


def offline_test_image(index: int) -> tuple[np.ndarray, int]:
    """Image `index` of the test split the pipeline makes with its default parameters."""
    import tempfile

    from pipelines.mnist.data import fetch_digits
    from pipelines.mnist.pipeline import make_pipeline
    from pipelines.mnist.preprocess import make_splits

    trained = parameter_defaults(make_pipeline())
    with tempfile.TemporaryDirectory() as downloads:
        digits = fetch_digits(trained["source"], Path(downloads))
    test = make_splits(digits, trained["validation_fraction"], trained["test_fraction"], trained["seed"]).test
    if not 0 <= index < len(test.labels):
        raise InputError(f"--index {index}: the test set has images 0..{len(test.labels) - 1}")
    return test.images[index] * 255, int(test.labels[index])


def digit_request(signature: Signature, args: argparse.Namespace) -> Request:
    """One digit, shaped as the signature asks; float inputs get pixels scaled to [0, 1]."""
    name, spec = signature.single_input()
    if args.image:
        pixels, about, truth = image_from_file(args.image), f"image {args.image}", ""
    else:
        pixels, label = offline_test_image(args.index)
        about, truth = f"test image {args.index}", f"the test set labels it {label}"
    dtype = NUMPY_DTYPES.get(spec.dtype, np.float32)
    values = pixels / 255 if np.issubdtype(dtype, np.floating) else np.rint(pixels)
    shape = [1] + [size if size > 0 else -1 for size in spec.shape[1:]]
    try:
        values = values.reshape(shape)
    except ValueError as error:
        raise InputError(f"the served signature takes '{name}' of shape {spec.shape}, not 28x28 images") from error
    return Request({name: values.astype(dtype)}, about, truth)
