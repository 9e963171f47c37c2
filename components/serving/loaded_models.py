"""The models the server has loaded from the store, and the poller that keeps them current."""

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from components.common.errors import InputError
from components.serving.metrics import ServingMetrics
from components.serving.servables import MAX_LOAD_ATTEMPTS, RequestRefused, Servable, invalid, load_servable
from components.store.folder import published_versions, read_labels
from components.store.serving_labels import ServingLabels

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
    """The models under `model_base_path` and the versions served of each.

    Without a labels record a model serves its highest loadable version (TF-Serving's
    "latest" policy). With `<model>/labels.json` (written by deploy, promote and
    rollback) it serves the labelled versions, as TF-Serving does with a model
    config's `specific` version policy and `version_labels`.
    """

    model_base_path: Path
    model_name: str | None = None  # serve only this model; None: every folder in the store
    served: dict[str, dict[int, ServedModel]] = field(default_factory=dict)
    labels: dict[str, dict[str, int]] = field(default_factory=dict)
    history: dict[str, dict[int, VersionStatus]] = field(default_factory=dict)
    failed_loads: dict[tuple[str, int], int] = field(default_factory=dict)
    metrics: ServingMetrics = field(default_factory=ServingMetrics)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self):
        self.metrics.label_of = self.label_of

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
            self.unload(name, list(self.served.get(name, {})))

    def _labels_record(self, name: str) -> ServingLabels | None:
        try:
            return read_labels(self.model_base_path / name)
        except InputError as error:  # a bad record must not stop serving what is loaded
            print(f"serving: {error}; keeping the versions served", flush=True)
            return ServingLabels(*self._labels_in_use(name))

    def _labels_in_use(self, name: str) -> tuple[int | None, int | None]:
        with self.lock:
            labels = self.labels.get(name, {})
        return labels.get("stable"), labels.get("canary")

    def poll_model(self, name: str) -> None:
        on_disk = published_versions(self.model_base_path / name)
        record = self._labels_record(name)
        loadable = [v for v in on_disk if self.failed_loads.get((name, v), 0) < MAX_LOAD_ATTEMPTS]
        if record is not None and record.stable is not None:
            wanted = [v for v in record.served() if v in loadable]
            labels = {label: version for label, version in (("stable", record.stable), ("canary", record.canary))
                      if version is not None and version in on_disk}
        else:
            wanted, labels = loadable[-1:], {}
        current = set(self.served.get(name, {}))
        # Availability first, as TF-Serving's default policy: new versions are
        # loaded while the old ones keep answering, then the old ones unloaded.
        for version in wanted:
            if version not in current:
                self.load(name, version)
        with self.lock:
            self.labels[name] = labels
        loaded = set(self.served.get(name, {}))
        if not on_disk or (set(wanted) & loaded):
            self.unload(name, sorted(loaded - set(wanted)))

    def load(self, name: str, version: int) -> None:
        version_dir = self.model_base_path / name / str(version)
        started = time.monotonic()
        try:
            servable = load_servable(version_dir)
        except Exception as error:  # any broken model must leave the server running
            attempts = self.failed_loads.get((name, version), 0) + 1
            self.failed_loads[(name, version)] = attempts
            message = getattr(error, "message", None) or f"{type(error).__name__}: {error}"
            self.metrics.load_attempt(name, version, str(version_dir), loaded=False)
            print(f"serving: cannot load {name} version {version} (attempt {attempts}/{MAX_LOAD_ATTEMPTS}): "
                  f"{message}", flush=True)
            if attempts >= MAX_LOAD_ATTEMPTS:
                with self.lock:
                    unknown = grpc.StatusCode.UNKNOWN.value[0]
                    self.history.setdefault(name, {})[version] = VersionStatus("END", unknown, message)
            return
        with self.lock:
            self.served.setdefault(name, {})[version] = ServedModel(version, servable)
            self.history.setdefault(name, {})[version] = VersionStatus("AVAILABLE")
        self.metrics.load_attempt(name, version, str(version_dir), loaded=True)
        print(f"serving: {name} version {version} loaded in {time.monotonic() - started:.1f}s", flush=True)

    def unload(self, name: str, numbers: list[int]) -> None:
        with self.lock:
            gone = [v for v in numbers if self.served.get(name, {}).pop(v, None) is not None]
            for version in gone:
                self.history[name][version] = VersionStatus("END")
            if name in self.served and not self.served[name]:
                del self.served[name]
        for version in gone:
            print(f"serving: {name} version {version} unloaded", flush=True)

    def label_of(self, name: str, version: int) -> str:
        """The serving label `version` of `name` has now (`stable`, `canary`), or "" for none."""
        with self.lock:
            labels = self.labels.get(name, {})
            return next((label for label, labelled in labels.items() if labelled == version), "")

    def version_for_label(self, name: str, label: str) -> int:
        with self.lock:
            version = self.labels.get(name, {}).get(label)
        if version is None:
            raise invalid(f"Unrecognized servable version label: {label}")
        return version

    def get(self, name: str, version: int | None, label: str | None = None) -> ServedModel:
        """The version asked for, the labelled one, or (neither) the highest served."""
        if label:
            version = self.version_for_label(name, label)
        with self.lock:
            loaded = dict(self.served.get(name, {}))
        chosen = version if version is not None else (max(loaded) if loaded else None)
        if chosen not in loaded:
            request = f"Specific({name}, {version})" if version is not None else f"Latest({name})"
            raise RequestRefused(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: {request}")
        return loaded[chosen]

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
