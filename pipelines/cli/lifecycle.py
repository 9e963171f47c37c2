"""Promote a canary, or roll back, in the local model store or on a cluster.

    kfp-ml promote sp500 [--version N]      (default: the canary)
    kfp-ml rollback sp500 [--to N]          (default: drop the canary)
    ... --cluster [--namespace kubeflow]    (through the kubeconfig's cluster)

The two verbs are pipelines/cli/promote.py and rollback.py; what they do is here.

Both rewrite the model's serving labels (`components.store.serving_labels.ServingLabels`):
locally `<model_base_path>/<model>/labels.json`, which the local server re-reads
on its next poll; on a cluster the `serving-<model>` ConfigMap, whose TF-Serving
model config TF-Serving re-reads (a label moving to a version TF-Serving does not
serve yet waits until that version is loaded: `components.cluster.labels`), and an
existing KServe InferenceService is pointed at the labelled versions. Each
command is idempotent (the same command twice changes nothing the second time
and says so) and refuses a version that was never published with one line.
"""

import argparse
import sys
from pathlib import Path

from components.common.errors import InputError, PipelineError
from components.store.folder import FolderStore
from components.store.serving_labels import ServingLabels, promoted, rolled_back


def change_labels(action: str, current: ServingLabels, available: list[int], model_name: str,
                  version: int | None) -> ServingLabels:
    if action == "promote":
        return promoted(current, available, model_name, version)
    return rolled_back(current, available, model_name, version)


def outcome_line(model_name: str, before: ServingLabels, after: ServingLabels, router: bool = True) -> str:
    """`router=False`: the local store, whose server sends unlabelled requests to the highest version."""
    if after == before:
        return f"{model_name}: unchanged, {after.describe(router)}"
    return f"{model_name}: {after.describe(router)} (was {before.describe()})"


def run_local(action: str, model_name: str, version: int | None, model_base_path: Path) -> str:
    store = FolderStore(model_base_path)
    available = store.published_versions(model_name)
    if not available:
        raise InputError(f"model '{model_name}' has no versions in {model_base_path}")
    before = store.serving_labels(model_name)
    after = change_labels(action, before, available, model_name, version)
    if after != before:
        store.write_labels(model_name, after)
    return outcome_line(model_name, before, after, router=False)


def run_cluster(action: str, model_name: str, version: int | None, namespace: str, api=None) -> str:
    from components.cluster import labels as kube_labels
    from components.cluster import serving as kube_serving

    if api is None:
        from kubernetes import config

        try:
            api = config.new_client_from_config()
        except Exception as error:  # no kubeconfig, or a broken one: one line either way
            raise InputError(f"--cluster: cannot load a kubeconfig ({error})") from error
    before = kube_labels.config_map_labels(api, model_name, namespace)
    if before is None:
        raise InputError(f"model '{model_name}' has no serving labels in namespace {namespace} "
                         f"(ConfigMap {kube_labels.config_map_name(model_name)}): deploy it first")
    after = change_labels(action, before, list(before.known_versions), model_name, version)
    line = outcome_line(model_name, before, after)
    if after != before:
        line += "; " + kube_serving.set_labels(api, model_name, namespace, after)
    return line


def add_arguments(parser: argparse.ArgumentParser, version_flag: str) -> None:
    """The options of `promote` (the version to make stable: `--version`) and `rollback` (`--to`)."""
    parser.add_argument("model", help="the model name (its folder in the model store)")
    parser.add_argument(version_flag, dest="version", type=int, help="the version to make stable")
    parser.add_argument("--model-base-path", type=Path, default=Path("model_store"),
                        help="the local model store (default: model_store)")
    parser.add_argument("--cluster", action="store_true", help="change the labels on the kubeconfig's cluster")
    parser.add_argument("--namespace", default="kubeflow", help="with --cluster: where the model is served")


def run_action(action: str, args: argparse.Namespace) -> int:
    """`promote` or `rollback` (`action`): one line saying what changed, or one error line and exit 1."""
    try:
        if args.cluster:
            print(run_cluster(action, args.model, args.version, args.namespace), flush=True)
        else:
            print(run_local(action, args.model, args.version, args.model_base_path), flush=True)
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 1
    return 0
