"""Working with a Kubeflow Pipelines cluster: connect, upload, run, recurring runs.

Everything goes through `kfp.Client` (and the `kfp_server_api` models it is
built on). The cluster is chosen by environment variables:

    KFP_HOST                     the Pipelines API, e.g. http://localhost:8080 after
                                 `kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80`
    KFP_TOKEN                    a bearer token (e.g. `gcloud auth print-access-token`,
                                 or a Kubeflow session token)
    KF_PIPELINES_SA_TOKEN_PATH   a service-account token file, re-read on every request
                                 (projected tokens rotate); used when KFP_TOKEN is unset
    KFP_NAMESPACE                the profile namespace of a multi-user Kubeflow
    KFP_EXPERIMENT               experiment for runs and schedules (default: the pipeline name)

Conventions that make repeated commands safe:
- A pipeline is registered under its compiled name (`sp500`, `sp500-gpu`) and gets
  one pipeline version per project version (`components.common.images.VERSION`). The
  version's description carries the package's sha256, so uploading the same
  package again is a no-op and a *different* package under an existing version
  is refused (KFP versions are immutable: bump the project version).
- A recurring run is identified by its name. Creating it again with the same
  settings is a no-op; with other settings it is refused unless `--replace`.
  KFP freezes the pipeline version into a recurring run, which is why moving a
  schedule to a new version is `upload` + `schedule create --replace`.
- Cron expressions are checked here, before anything is sent, with the rules of
  the parser KFP uses (robfig/cron v1: six fields, seconds first).
"""
