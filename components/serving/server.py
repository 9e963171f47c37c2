"""Start, describe and stop the local server (`kfp-ml serve`, in the foreground: pipelines/cli/serve.py)."""

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from components.common.errors import InputError
from components.store.base import check_model_name

if TYPE_CHECKING:  # the serving modules import TensorFlow: its arguments are checked first
    import grpc

    from components.serving.loaded_models import ModelRegistry
    from components.serving.rest_api import RestServer

# --- running it --------------------------------------------------------------------------


@dataclass
class RunningServer:
    registry: "ModelRegistry"
    grpc_server: "grpc.Server"
    rest_server: "RestServer"
    grpc_port: int
    rest_port: int
    stop_polling: threading.Event

    def stop(self) -> None:
        self.stop_polling.set()
        self.rest_server.shutdown()
        self.rest_server.server_close()
        self.grpc_server.stop(grace=1).wait()


def poll_forever(registry: "ModelRegistry", every_seconds: float, stop: threading.Event) -> None:
    while not stop.wait(every_seconds):
        try:
            registry.poll()
        except Exception as error:  # the poller must outlive a bad folder
            print(f"serving: polling {registry.model_base_path} failed: {error}", flush=True)


def check_arguments(model_base_path: Path, model_name: str | None, poll_seconds: float, wait: bool) -> None:
    """Everything `serve` can refuse before loading anything; `wait` lets the store and model come later."""
    if model_name is not None:
        try:
            check_model_name(model_name)  # the store's own rule for a model folder's name
        except InputError:
            raise InputError(f"--model-name '{model_name}' is not a model folder name") from None
    if poll_seconds <= 0:
        raise InputError(f"--poll-seconds must be positive, got {poll_seconds}")
    if not wait:
        check_store(model_base_path, model_name)


def check_store(model_base_path: Path, model_name: str | None) -> None:
    """Refuse a store folder that is not there, or a model it does not hold, naming the models it does."""
    if not model_base_path.is_dir():
        raise InputError(f"--model-base-path {model_base_path}: no such folder "
                         "(`make run` creates model_store/ at its first deploy; --wait serves it once it exists)")
    if model_name is not None and not (model_base_path / model_name).is_dir():
        models = sorted(p.name for p in model_base_path.iterdir() if p.is_dir() and not p.name.startswith("."))
        raise InputError(f"--model-name '{model_name}': {model_base_path} holds "
                         + (f"the models {', '.join(models)}" if models else "no model yet")
                         + " (--wait serves it once a first version is deployed)")


def serve(model_base_path: Path, model_name: str | None = None, host: str = "127.0.0.1",
          grpc_port: int = 8500, rest_port: int = 8501, poll_seconds: float = 1.0,
          wait: bool = False) -> RunningServer:
    """Load what the store holds, then serve gRPC and REST in background threads.

    Port 0 picks a free port; the ports bound are in the result. Without `wait`, a
    store folder or model that is not there is an error, not a wait for a first version.
    """
    check_arguments(Path(model_base_path), model_name, poll_seconds, wait)
    from components.serving.grpc_api import start_grpc
    from components.serving.loaded_models import ModelRegistry
    from components.serving.rest_api import RestServer

    registry = ModelRegistry(Path(model_base_path), model_name)
    registry.poll()
    grpc_server, grpc_bound = start_grpc(registry, host, grpc_port)
    try:
        rest_server = RestServer((host, rest_port), registry)
    except OSError as error:
        grpc_server.stop(grace=None)
        raise InputError(f"--rest-port {rest_port}: cannot listen on {host}:{rest_port} ({error})") from error
    threading.Thread(target=rest_server.serve_forever, name="rest", daemon=True).start()
    stop_polling = threading.Event()
    threading.Thread(target=poll_forever, args=(registry, poll_seconds, stop_polling),
                     name="poller", daemon=True).start()
    return RunningServer(registry, grpc_server, rest_server, grpc_bound, rest_server.server_address[1], stop_polling)


def describe_versions(registry: "ModelRegistry", name: str) -> str:
    """`version 3` or `versions 2 (stable), 3 (canary)`."""
    with registry.lock:
        numbers = sorted(registry.served.get(name, {}))
        by_version = {v: label for label, v in registry.labels.get(name, {}).items()}
    shown = [f"{v} ({by_version[v]})" if v in by_version else str(v) for v in numbers]
    return f"version{'s' if len(shown) > 1 else ''} {', '.join(shown)}"


def describe(running: RunningServer, host: str) -> str:
    from components.store.serving_config import MONITORING_PATH

    registry = running.registry
    served = ", ".join(f"{name} {describe_versions(registry, name)}" for name in sorted(registry.served))
    lines = [f"model store: {registry.model_base_path.resolve()}",
             f"serving: {served}" if served else
             "serving: nothing yet; waiting for a version to be deployed (e.g. make run PARAMS=\"threshold=0.5\")",
             f"gRPC: tensorflow.serving.PredictionService on {host}:{running.grpc_port}",
             f"REST: http://{host}:{running.rest_port}/v1/models/<name>[/labels/<label>]  (:predict, /metadata)",
             f"metrics: http://{host}:{running.rest_port}{MONITORING_PATH}",
             "new versions are picked up without a restart; Ctrl-C stops"]
    return "\n".join(lines)
