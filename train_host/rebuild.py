"""Re-assemble a checkpoint's weights in the graph the current code builds.

    python -m train_host.rebuild runs/emotion64/best.keras --out runs/emotion64/best_rebuilt.keras

For when the model code changes around unchanged weights (e.g. the frozen
input blur's border handling): the architecture, input size, class count and
input blur are read from the checkpoint, the graph is built anew by
``train_host.models`` and the weights are copied layer by layer by name.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge.frame.manifest import ModelError


def blur_sigma_of(model) -> float:
    """The input blur's sigma, recovered from its frozen taps (0 when there is none)."""
    import numpy as np

    from train_host.models import gaussian_kernel

    try:
        taps = model.get_layer("input_blur_h").get_weights()[0].ravel()
    except ValueError:
        return 0.0
    candidates = np.arange(0.3, 12.0, 0.0005)
    errors = [np.abs(gaussian_kernel(s) - taps).sum() if gaussian_kernel(s).size == taps.size else np.inf
              for s in candidates]
    return float(candidates[int(np.argmin(errors))])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train_host.rebuild", description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("--out", required=True)
    parser.add_argument("--sigma", type=float, help="input blur sigma (default: read from the checkpoint)")
    args = parser.parse_args(argv)
    from train_host.evaluate import load_model
    from train_host.tfquiet import import_keras

    try:
        load_model(args.model)  # one-line errors for a missing or broken file
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    keras = import_keras()
    from train_host.models import build_model
    from train_host.sequence import canonical_copy

    old = keras.models.load_model(args.model, compile=False)
    sigma = args.sigma if args.sigma is not None else blur_sigma_of(old)
    new = build_model(old.name, tuple(old.input_shape[1:]), int(old.output_shape[-1]), blur_sigma=sigma)
    canonical_copy(old, new).save(Path(args.out))
    print(f"{args.out}: {old.name}, input blur sigma {sigma:.3f}, {new.count_params():,} parameters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
