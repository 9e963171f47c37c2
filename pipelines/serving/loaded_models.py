"""The models the server has loaded from the store, and the poller that keeps them current."""

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from components.model_store import versions
from pipelines.serving.servables import MAX_LOAD_ATTEMPTS, RequestRefused, Servable, load_servable

# --- the model registry and its poller ----------------------------------------


@dataclass
class VersionStatus:
    state: str  # a ModelVersionStatus.State name: AVAILABLE, END
    error_code: int = 0  # a tensorflow.error.Code (the gRPC numbers): 0 OK, 2 UNKNOWN
    error_message: str = ""


@dataclass
class ServedModel:
    version: int
    servable: Servable


@dataclass
class ModelRegistry:
    """The models under `model_base_path`, each at its highest loadable version."""

    model_base_path: Path
    model_name: str | None = None  # serve only this model; None: every folder in the store
    served: dict[str, ServedModel] = field(default_factory=dict)
    history: dict[str, dict[int, VersionStatus]] = field(default_factory=dict)
    failed_loads: dict[tuple[str, int], int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def model_names(self) -> list[str]:
        if self.model_name:
            return [self.model_name]
        if not self.model_base_path.is_dir():
            return []
        return sorted(p.name for p in self.model_base_path.iterdir() if p.is_dir() and not p.name.startswith("."))

    def poll(self) -> None:
        """One pass of the file system poller: load what is new, unload what is gone."""
        names = set(self.model_names())
        for name in names:
            self.poll_model(name)
        for name in set(self.served) - names:
            self.unload(name)

    def poll_model(self, name: str) -> None:
        on_disk = versions(self.model_base_path / name)
        current = self.served.get(name)
        candidates = [v for v in reversed(on_disk) if self.failed_loads.get((name, v), 0) < MAX_LOAD_ATTEMPTS]
        if not on_disk:
            if current:
                self.unload(name)
            return
        if not candidates or (current and current.version == candidates[0]):
            return
        # Availability first, as TF-Serving's default policy: the new version is
        # loaded while the old one keeps answering, then the two are swapped.
        self.load(name, candidates[0])

    def load(self, name: str, version: int) -> None:
        version_dir = self.model_base_path / name / str(version)
        started = time.monotonic()
        try:
            servable = load_servable(version_dir)
        except Exception as error:  # any broken model must leave the server running
            attempts = self.failed_loads.get((name, version), 0) + 1
            self.failed_loads[(name, version)] = attempts
            message = getattr(error, "message", None) or f"{type(error).__name__}: {error}"
            print(f"serving: cannot load {name} version {version} (attempt {attempts}/{MAX_LOAD_ATTEMPTS}): "
                  f"{message}", flush=True)
            if attempts >= MAX_LOAD_ATTEMPTS:
                with self.lock:
                    unknown = grpc.StatusCode.UNKNOWN.value[0]
                    self.history.setdefault(name, {})[version] = VersionStatus("END", unknown, message)
            return
        with self.lock:
            previous = self.served.get(name)
            self.served[name] = ServedModel(version, servable)
            states = self.history.setdefault(name, {})
            states[version] = VersionStatus("AVAILABLE")
            if previous:
                states[previous.version] = VersionStatus("END")
        replaced = f", replacing version {previous.version}" if previous else ""
        print(f"serving: {name} version {version} loaded in {time.monotonic() - started:.1f}s{replaced}", flush=True)

    def unload(self, name: str) -> None:
        with self.lock:
            gone = self.served.pop(name, None)
            if gone:
                self.history[name][gone.version] = VersionStatus("END")
        if gone:
            print(f"serving: {name} version {gone.version} unloaded (no versions left on disk)", flush=True)

    def get(self, name: str, version: int | None) -> ServedModel:
        with self.lock:
            model = self.served.get(name)
        if model is None or (version is not None and version != model.version):
            request = f"Specific({name}, {version})" if version is not None else f"Latest({name})"
            raise RequestRefused(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: {request}")
        return model

    def status(self, name: str, version: int | None) -> list[tuple[int, VersionStatus]]:
        with self.lock:
            states = dict(self.history.get(name, {}))
        if version is not None:
            if version not in states:
                raise RequestRefused(grpc.StatusCode.NOT_FOUND, f"Could not find version {version} of model {name}")
            return [(version, states[version])]
        if not states:
            raise RequestRefused(grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {name}")
        return sorted(states.items(), reverse=True)


