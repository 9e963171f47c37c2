"""The deploy step shared by every pipeline, and how a pipeline adds it.

The step runs only inside the pipeline's gate (`dsl.If(metric >= threshold)`),
copies the model into the model store as a new TF-Serving version and, when it
runs in a Kubernetes pod, makes sure a server (TF-Serving for `model_format`
"tensorflow", KServe for "lightgbm") serves that store (see
`components.kube_serving`). Outside a cluster (a laptop run through kfp.local)
the model store alone is the result.
"""

from kfp import dsl, kubernetes
from kfp.dsl import Input, Model

from components.images import cpu_component
from components.kube_serving import MODEL_STORE_MOUNT, mount_deployer_credentials


@cpu_component
def deploy_model(
    model: Input[Model],
    model_name: str,
    model_base_path: str,
    model_store_pvc: str,
    model_format: str = "tensorflow",
    serving_namespace: str = "",
    use_kserve: bool = False,
) -> str:
    """Publish `model` as version N+1 of `model_name`; return the version folder."""
    from pathlib import Path

    from components import kube_serving
    from components.errors import InputError
    from components.model_store import publish_version

    in_cluster = kube_serving.in_cluster()
    if in_cluster:
        # Checked before publishing: a version the server can never read is no deploy.
        kube_serving.object_name(model_name)
        if not model_base_path.startswith("gs://") and Path(model_base_path) != Path(kube_serving.MODEL_STORE_MOUNT):
            raise InputError(f"model_base_path '{model_base_path}': on a cluster the model store claim is "
                             f"mounted at {kube_serving.MODEL_STORE_MOUNT}, where the server reads it")
    version_dir = publish_version(Path(model.path), model_base_path, model_name)
    print(f"deployed {model_name} version {version_dir.name} to {version_dir}", flush=True)
    if in_cluster:
        print(kube_serving.deploy_serving(
            model_name=model_name,
            model_format=model_format,
            model_store_pvc=model_store_pvc,
            namespace=serving_namespace or None,
            model_version=int(version_dir.name),
            kserve=use_kserve,
            model_store_uri=model_base_path if model_base_path.startswith("gs://") else "",
        ), flush=True)
    else:
        print("not in a Kubernetes pod: the model store is the deployment", flush=True)
    return str(version_dir)


def add_deploy_task(model, model_name, model_base_path, model_store_pvc, serving_namespace,
                    model_format: str = "tensorflow", use_kserve=False) -> dsl.PipelineTask:
    """Add the deploy step to a pipeline (call it inside the gate's `dsl.If`); the
    arguments are the pipeline's channels (the trained model, its parameters).
    `use_kserve` serves a TensorFlow model through a KServe InferenceService
    instead of a TF-Serving Deployment (LightGBM models always use KServe).

    Never cached (a deploy must happen every time it is asked for); the model
    store claim is mounted where `model_base_path` points by default, and the
    deployer's least-privilege credentials when their Secret exists.
    """
    task = deploy_model(model=model, model_name=model_name, model_base_path=model_base_path,
                        model_store_pvc=model_store_pvc, model_format=model_format,
                        serving_namespace=serving_namespace, use_kserve=use_kserve)
    task.set_caching_options(False)
    kubernetes.mount_pvc(task, pvc_name=model_store_pvc, mount_path=MODEL_STORE_MOUNT)
    mount_deployer_credentials(task)
    return task
