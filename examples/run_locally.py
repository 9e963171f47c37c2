"""Run the pipeline of compose_components.py on this machine with kfp.local.

Each step runs as a subprocess of this Python (`SubprocessRunner(use_venv=False)`),
so this project's package must be importable here: run it from a checkout with the
package installed (`make setup`), or with `PYTHONPATH` set to the checkout. The
data is the offline S&P 500 and NASDAQ prices that ship with the `arch` package:
nothing is downloaded.

    python examples/run_locally.py --output-dir /tmp/my-run --epochs 1

Then model_store.py reads the model store it filled, and serve_and_predict.py serves it.
"""

import argparse
import os
import tempfile
import warnings
from pathlib import Path

from compose_components import my_sp500
from kfp import local

MODEL_NAME = "my-sp500"


def run(output_dir: Path, model_type: str, epochs: int, threshold: float) -> Path:
    """Run the pipeline with every output under `output_dir`; returns the model store's folder."""
    pipeline_root = output_dir / "artifacts"  # every task's outputs: <run>/<task>/<output>
    workspace = output_dir / "workspace"  # the run's workspace volume, emulated by a folder
    model_store = output_dir / "model_store"  # <model_name>/<N>/ per deployed version
    workspace.mkdir(parents=True, exist_ok=True)
    # A pipeline that uses a workspace cannot run without `workspace_root`.
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(pipeline_root),
               workspace_root=str(workspace))
    # Each component names this project's image; run here instead, kfp warns about it at every step.
    warnings.filterwarnings("ignore", message="You may be attemping to run a task")
    # The steps inherit this environment: fewer of TensorFlow's C++ start-up lines.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # A failed step raises here (kfp.local's raise_on_error defaults to True).
    my_sp500(model_type=model_type, epochs=epochs, threshold=threshold, model_name=MODEL_NAME,
             model_base_path=str(model_store))
    return model_store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=None,
                        help="where everything goes (default: a new temp folder)")
    parser.add_argument("--model-type", default="flat", choices=["flat", "deep"])
    parser.add_argument("--epochs", type=int, default=1)
    # 0 deploys whatever trains, so that the other examples find a model in the store.
    parser.add_argument("--threshold", type=float, default=0.0, help="the least test accuracy deployed")
    args = parser.parse_args()
    output_dir = (args.output_dir or Path(tempfile.mkdtemp(prefix="my-sp500-"))).resolve()

    model_store = run(output_dir, args.model_type, args.epochs, args.threshold)
    print(f"task outputs (models, metrics, reports): {output_dir / 'artifacts'}")
    for report in sorted((output_dir / "artifacts").glob("*/*/report")):
        print(f"  HTML report of {report.parent.name}: {report}")
    versions = sorted(p for p in (model_store / MODEL_NAME).glob("[0-9]*") if p.is_dir())
    print(f"model store: {model_store}"
          + (f" (deployed: {versions[-1]})" if versions else " (nothing deployed: the gate refused)"))


if __name__ == "__main__":
    main()
