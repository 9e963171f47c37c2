"""What a compiled package asks of a cluster, decided in one place at compile time.

Like the image names (`components.common.images`), these come from the environment
when the pipelines are compiled: the Makefile exports them from its variables
or from local.mk, so `make compile` and `make test` see the same ones.

    WORKSPACE_ACCESS_MODE    access mode of the run's workspace claim (default ReadWriteOnce)
    WORKSPACE_STORAGE_CLASS  storage class of that claim (default: the cluster's default class)
    IMAGE_PULL_SECRET        a Secret of type kubernetes.io/dockerconfigjson that every step's
                             pod pulls the image with (default: none, a public registry)
    STEP_USER                who every step runs as: `root` (default: uid 0) or `nonroot`
                             (uid/gid 1000, runAsNonRoot)

Who the steps run as. The image's own USER is 1000, so every package says
which identity it wants. `root` works on a stock cluster: the workspace claim
the backend creates, and most storage classes' volumes, are root-owned 0755,
and the backend sets no fsGroup (kfp-kubernetes 2.17 cannot ask for one).
Pod Security "baseline" admits it; the backend adds the hardening of the
container itself (no privilege escalation, all capabilities dropped, the
runtime's seccomp profile). `nonroot` meets the "restricted" level, for
clusters whose volumes uid 1000 can write: an fsGroup that an admission
policy or the administrator's defaults give, or volumes prepared beforehand
(the model store's ownership Job in deploy/model-store-pvc.yaml).

The workspace claim is created by the KFP backend (>= 2.15) for every run: it
starts from the administrator's default claim spec, when one is configured,
and patches in the package's `pvcSpecPatch`, which may carry only
`accessModes` and `storageClassName`; the size comes from the package. With no
administrator default, a patch without an access mode gives a claim that
Kubernetes refuses, which is why every package carries one. ReadWriteOnce is
what every default storage class offers; it attaches to one node at a time,
so the pipelines never run two tasks on the workspace at once (the mnist
trials hand their models on as artifacts).

`apply_cluster_settings(resources)` is called once at the end of each pipeline
function with the pipeline's own resources table (its spec's): it gives every
task its resources from that table or the shared rows of
`components.settings.resources`, the image pull secret and the step user.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass

from kfp import dsl, kubernetes
from kfp.dsl import pipeline_context

from components.common.errors import InputError
from components.settings.resources import StepResources, resources_for

WORKSPACE_ACCESS_MODES = ("ReadWriteOnce", "ReadWriteOncePod", "ReadWriteMany")
STEP_USERS = {"root": (0, 0), "nonroot": (1000, 1000)}  # mode -> (uid, gid)
DNS_SUBDOMAIN_CHARACTERS = set("abcdefghijklmnopqrstuvwxyz0123456789-.")


@dataclass(frozen=True)
class ClusterSettings:
    workspace_access_mode: str = "ReadWriteOnce"
    workspace_storage_class: str = ""  # "": the cluster's default storage class
    image_pull_secret: str = ""  # "": images are pulled without credentials
    step_user: str = "root"  # a key of STEP_USERS

    @classmethod
    def from_env(cls) -> "ClusterSettings":
        settings = cls(
            workspace_access_mode=os.environ.get("WORKSPACE_ACCESS_MODE", "").strip() or cls.workspace_access_mode,
            workspace_storage_class=os.environ.get("WORKSPACE_STORAGE_CLASS", "").strip(),
            image_pull_secret=os.environ.get("IMAGE_PULL_SECRET", "").strip(),
            step_user=os.environ.get("STEP_USER", "").strip() or cls.step_user)
        settings.check()
        return settings

    def check(self) -> None:
        if self.workspace_access_mode not in WORKSPACE_ACCESS_MODES:
            raise InputError(f"WORKSPACE_ACCESS_MODE '{self.workspace_access_mode}' is not one of "
                             f"{', '.join(WORKSPACE_ACCESS_MODES)}")
        if self.step_user not in STEP_USERS:
            raise InputError(f"STEP_USER '{self.step_user}' is not one of {', '.join(STEP_USERS)}")
        for name, value in (("WORKSPACE_STORAGE_CLASS", self.workspace_storage_class),
                            ("IMAGE_PULL_SECRET", self.image_pull_secret)):
            if value and (len(value) > 253 or not set(value) <= DNS_SUBDOMAIN_CHARACTERS
                          or not value[0].isalnum() or not value[-1].isalnum()):
                raise InputError(f"{name} '{value}' is not a Kubernetes object name "
                                 "(lowercase letters, digits, '-' and '.')")

    def pvc_spec_patch(self) -> dict:
        """The package's patch onto the backend's default workspace claim spec."""
        patch: dict = {"accessModes": [self.workspace_access_mode]}
        if self.workspace_storage_class:
            patch["storageClassName"] = self.workspace_storage_class
        return patch


def pipeline_config(workspace_size: str) -> dsl.PipelineConfig:
    """The `pipeline_config` of every pipeline: a run workspace of `workspace_size`
    with the access mode and storage class of the compile-time settings."""
    settings = ClusterSettings.from_env()
    return dsl.PipelineConfig(workspace=dsl.WorkspaceConfig(
        size=workspace_size,
        kubernetes=dsl.KubernetesWorkspaceConfig(pvcSpecPatch=settings.pvc_spec_patch())))


def apply_cluster_settings(resources: Mapping[str, StepResources]) -> None:
    """Give every task of the pipeline being defined its resources (its row of
    `resources`, the pipeline's own table, or a shared row), image pull secret
    and user. Call it once, at the end of the pipeline function, so that it sees
    every task (those inside `dsl.If` and loops too)."""
    settings = ClusterSettings.from_env()
    pipeline = pipeline_context.Pipeline.get_default_pipeline()
    for task in pipeline.tasks.values():
        resources_for(resources, task.component_spec.name, pipeline.name).apply(task)
        if settings.image_pull_secret:
            kubernetes.set_image_pull_secrets(task, [settings.image_pull_secret])
        uid, gid = STEP_USERS[settings.step_user]
        kubernetes.set_security_context(task, run_as_user=uid, run_as_group=gid,
                                        run_as_non_root=True if uid else None)
