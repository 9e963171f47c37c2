"""Where GPU training tasks run: compile-time settings shared by every pipeline.

KFP cannot take accelerator settings from pipeline parameters in every runner
(the local runner loses them), so they are read from the environment when the
pipeline is compiled, like the image names.
"""

import os
from dataclasses import dataclass

from kfp import dsl, kubernetes

from components.common.errors import InputError


@dataclass(frozen=True)
class GpuSettings:
    """Where the GPU variant's train tasks run, read from the environment at compile time.

    - `GPU_COUNT` (default 1): GPUs per trial (`nvidia.com/gpu` limit).
    - `GPU_NODE_SELECTOR` (default `nvidia.com/gpu.present=true`, the label the
      NVIDIA GPU operator puts on GPU nodes; on GKE e.g.
      `cloud.google.com/gke-accelerator=nvidia-l4`); empty for no node selector.
    - `GPU_TOLERATION` (default `nvidia.com/gpu:NoSchedule`, the taint GKE and
      most GPU node pools carry): `key:effect`, tolerated with operator Exists;
      empty for no toleration.
    """

    count: int = 1
    node_selector: tuple[str, str] | None = ("nvidia.com/gpu.present", "true")
    toleration: tuple[str, str] | None = ("nvidia.com/gpu", "NoSchedule")

    @classmethod
    def from_env(cls) -> "GpuSettings":
        defaults = cls()
        count_text = os.environ.get("GPU_COUNT", str(defaults.count))
        if not count_text.isdigit() or int(count_text) < 1:
            raise InputError(f"GPU_COUNT must be a whole number >= 1, got '{count_text}'")
        return cls(int(count_text),
                   _pair_from_env("GPU_NODE_SELECTOR", "=", defaults.node_selector),
                   _pair_from_env("GPU_TOLERATION", ":", defaults.toleration))

    def apply(self, task: dsl.PipelineTask) -> None:
        task.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(self.count)
        if self.node_selector:
            kubernetes.add_node_selector(task, label_key=self.node_selector[0], label_value=self.node_selector[1])
        if self.toleration:
            kubernetes.add_toleration(task, key=self.toleration[0], operator="Exists", effect=self.toleration[1])


def _pair_from_env(name: str, separator: str, default: tuple[str, str] | None) -> tuple[str, str] | None:
    text = os.environ.get(name)
    if text is None:
        return default
    if not text.strip():
        return None
    key, sep, value = text.strip().partition(separator)
    if not sep or not key or not value:
        raise InputError(f"{name} should look like 'key{separator}value', got '{text}'")
    return key, value
