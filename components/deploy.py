"""The deploy step shared by every pipeline.

It runs only inside the pipeline's gate (`dsl.If(metric >= threshold)`), copies
the model into the model store as a new TF-Serving version and, when it runs in
a Kubernetes pod, makes sure a server (TF-Serving for `model_format`
"tensorflow", KServe for "lightgbm") serves that store (see
`components.kube_serving`). Outside a cluster (a laptop run through kfp.local)
the model store alone is the result.
"""

from kfp.dsl import Input, Model

from components.images import cpu_component


@cpu_component
def deploy_model(
    model: Input[Model],
    model_name: str,
    model_base_path: str,
    model_store_pvc: str,
    model_format: str = "tensorflow",
    serving_namespace: str = "",
) -> str:
    """Publish `model` as version N+1 of `model_name`; return the version folder."""
    import os
    from pathlib import Path

    from components.model_store import publish_version

    version_dir = publish_version(Path(model.path), Path(model_base_path), model_name)
    print(f"deployed {model_name} version {version_dir.name} to {version_dir}", flush=True)
    if "KUBERNETES_SERVICE_HOST" in os.environ:  # set in every Kubernetes pod
        from components import kube_serving

        print(kube_serving.deploy_serving(
            model_name=model_name,
            model_format=model_format,
            model_store_pvc=model_store_pvc,
            namespace=serving_namespace or None,
        ), flush=True)
    else:
        print("not in a Kubernetes pod: the model store is the deployment", flush=True)
    return str(version_dir)
