"""A local stand-in for TF-Serving, so the train → deploy → query loop runs offline.

On a cluster the real TF-Serving (or KServe for LightGBM) serves the model store;
this server speaks the same APIs over the same store layout, so the request
client and any TF-Serving client work against either:

- gRPC `tensorflow.serving.PredictionService` (Predict, GetModelMetadata) and
  `ModelService.GetModelStatus`, from the official `tensorflow-serving-api` stubs;
- REST `POST /v1/models/<name>[/versions/<n>|/labels/<label>]:predict` with
  `instances` (row format) or `inputs` (columnar format),
  `GET /v1/models/<name>[/versions/<n>|/labels/<label>]` (status) and `.../metadata`;
- Prometheus metrics at `/monitoring/prometheus/metrics` on the REST port
  (`components.serving.metrics`): requests by model, version, serving label and status, latency,
  model load attempts.

The store is `<model_base_path>/<model_name>/<N>/`. Like TF-Serving's file
system poller with its default "latest" version policy, a background thread looks
at the folder every `poll_seconds`, loads the highest version, switches to it
once loaded and unloads the previous one: deploying a new version needs no
restart. When the deploy step (or `promote`/`rollback`) has written
`<model_name>/labels.json`, the server serves the versions labelled `stable` and
`canary`, as TF-Serving does with a model config's version labels: clients ask
by label (gRPC `ModelSpec.version_label`, REST `/labels/<label>`), and a request
naming neither version nor label gets the highest version served (the canary
while one is out). Splitting unlabelled traffic by share is a router's job
(KServe on a cluster), not TF-Serving's, and this server does not do it.
A version folder holds a SavedModel (`saved_model.pb`) or a single
LightGBM text model (the crypto pipeline's model), which is served with the
signature `features` float64 [batch, n] → `predictions` float64 [batch].

Errors follow TF-Serving: gRPC status codes (INVALID_ARGUMENT, NOT_FOUND,
FAILED_PRECONDITION …) and, over REST, `{"error": "<message>"}` with the HTTP
code TF-Serving maps that status to (400, 404 …). A malformed request never
takes the server down.
"""

import os

# TensorFlow's C++ start-up chatter (CUDA probing, CPU flags) is noise for a server or a
# client: set before any module of this package imports TensorFlow.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
