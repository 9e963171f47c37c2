"""Read a model store: its versions, each version's evaluation, and which versions serve.

The deploy step publishes version N as `<model_base_path>/<model_name>/<N>/` with an
`evaluation.json` beside the model (its metrics on the test set, the data window, the
run and the gate's verdict) and writes the serving labels (`stable`, `canary`) to
`<model_name>/labels.json`. run_locally.py fills one:

    python examples/model_store.py --model-base-path /tmp/my-run/model_store --model-name my-sp500

`open_store` takes a folder or a gs:// URI: the same calls read a bucket.
"""

import argparse

from components.common.errors import InputError
from components.store import open_store


def describe(model_base_path: str, model_name: str) -> list[str]:
    """One line per version (its evaluation and label), then the labels."""
    store = open_store(model_base_path)
    evaluations = {version: store.evaluation(model_name, version) for version in store.published_versions(model_name)}
    if not evaluations:
        raise InputError(f"--model-base-path {model_base_path}: no published version of '{model_name}' "
                         "(examples/run_locally.py deploys one)")
    labels = store.serving_labels(model_name)  # without labels.json: the highest version is stable

    by_version = {labels.stable: "stable", labels.canary: "canary"}
    lines = []
    for version, evaluation in evaluations.items():
        label = f" [{by_version[version]}]" if version in by_version else ""
        if evaluation is None:  # published before evaluations were recorded
            lines.append(f"version {version}{label}: no evaluation recorded")
            continue
        metric = evaluation["gate_metric"]
        lines.append(f"version {version}{label}: {metric} {evaluation['metrics'][metric]:.4f} on "
                     f"{evaluation['test_set']}, run {evaluation['run']}, gate: {evaluation['gate']['decision']}")
    lines.append(f"serving labels: {labels.describe()}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-base-path", default="model_store", help="the store's root: a folder or gs://bucket/path")
    parser.add_argument("--model-name", default="my-sp500")
    args = parser.parse_args()
    print("\n".join(describe(args.model_base_path, args.model_name)))


if __name__ == "__main__":
    try:
        main()
    except InputError as error:  # bad input: one line, as the project's command line says it
        raise SystemExit(f"error: {error}") from None
