"""A local stand-in for the Kubernetes API: the serving objects, ConfigMaps and the service proxy
(see standins.http)."""

import itertools
import json
import re
import ssl

from standins.http import StandIn, check_against_model

K8S_PATH = re.compile(r"/(?:api/v1|apis/(?P<group>[^/]+)/(?P<version>[^/]+))/namespaces/(?P<namespace>[^/]+)/"
                      r"(?P<plural>[^/]+)/(?P<name>[^/]+)")
K8S_MODELS = {"deployments": "V1Deployment", "services": "V1Service", "configmaps": "V1ConfigMap"}
# The API server's proxy to a Service port: /api/v1/namespaces/NS/services/NAME:PORT/proxy/PATH
SERVICE_PROXY = re.compile(r"/api/v1/namespaces/(?P<namespace>[^/]+)/services/(?P<service>[^/:]+):(?P<port>[^/]+)"
                           r"/proxy(?P<rest>/.*)")
MODEL_STATUS = re.compile(r"/v1/models/(?P<model>[^/]+)/versions/(?P<version>\d+)")


class KubeStandIn(StandIn):
    """The Kubernetes API as the deploy step uses it: GET and server-side apply.

    It enforces the Role in deploy/rbac.yaml (403 for anything it does not
    grant), records which (group, resource, verb) each request needed, keeps
    resourceVersion and generation the way the API server does for applies
    (unchanged on a no-op), and reports a Deployment's rollout complete after
    `rollout_polls` reads (never when `rollout_polls` is None). With
    `namespace`, the Role is a namespaced one: it grants nothing elsewhere.

    Behind a TF-Serving Service's proxy (`services/NAME:http/proxy/...`) it
    answers TF-Serving's REST model status: a version the model's ConfigMap
    config lists is LOADING, then AVAILABLE from its `model_loads`-th status
    read (never when `model_loads` is None); an unlisted one is 404. Like
    TF-Serving's config reload, it refuses (in `errors`) a ConfigMap whose
    config moves a label in use to a version the previous config did not serve,
    where a TF-Serving Service reads that config.
    `applied` keeps every applied object in order.
    """

    def __init__(self, tls: ssl.SSLContext, token: str, role_rules: list[dict], kserve: bool = True,
                 rollout_polls: int | None = 1, namespace: str | None = None, model_loads: int | None = 1):
        super().__init__(tls)
        from kubernetes import client

        self.api_client = client.ApiClient()
        self.models = client.models
        self.token, self.kserve, self.rollout_polls = token, kserve, rollout_polls
        self.namespace = namespace
        self.allowed = {(group, resource, verb) for rule in role_rules for group in rule["apiGroups"]
                        for resource in rule["resources"] for verb in rule["verbs"]}
        self.used: set[tuple[str, str, str]] = set()
        self.objects: dict[str, dict] = {}
        self.polls: dict[str, int] = {}
        self.versions = itertools.count(100)
        self.model_loads = model_loads
        self.status_reads: dict[tuple[str, str, int], int] = {}
        self.applied: list[tuple[str, dict]] = []

    def _denied(self, group: str, plural: str, verb: str):
        """The API server's 403 when the Role does not allow `verb` on `plural`, else None (and the
        right is recorded as used)."""
        if (group, plural, verb) not in self.allowed:
            return 403, _status(403, f"cannot {verb} resource \"{plural}\" in API group \"{group}\""), \
                "application/json"
        self.used.add((group, plural, verb))
        return None

    def handle(self, method, path, query, headers, body):
        if headers.get("Authorization", "").lower() != f"bearer {self.token}":
            return 401, _status(401, "Unauthorized"), "application/json"
        proxy = SERVICE_PROXY.fullmatch(path)
        match = proxy or K8S_PATH.fullmatch(path)
        assert match, f"unexpected path {path}"
        group, plural = ("", "services/proxy") if proxy else (match["group"] or "", match["plural"])
        if group == "serving.kserve.io" and not self.kserve:
            return 404, _status(404, "the server could not find the requested resource"), "application/json"
        exists = path in self.objects
        verbs = {"GET": ["get"], "PATCH": ["patch"] if exists else ["create", "patch"]}[method]
        for verb in verbs:
            if self.namespace and match["namespace"] != self.namespace:
                return 403, _status(403, f"cannot {verb} resource \"{plural}\" in API group \"{group}\" "
                                         f"in the namespace \"{match['namespace']}\""), "application/json"
            if (group, plural, verb) not in self.allowed:
                return 403, _status(403, f"cannot {verb} resource \"{plural}\" in API group \"{group}\""), \
                    "application/json"
        self.used.update((group, plural, verb) for verb in verbs)
        if proxy:
            assert method == "GET", "only model status reads go through the proxy"
            return (*self.model_status(**proxy.groupdict()), "application/json")
        if method == "GET":
            if not exists:
                return 404, _status(404, f"{plural} \"{match['name']}\" not found"), "application/json"
            return 200, self._with_status(path), "application/json"
        return 200, self.apply(path, match, query, headers, body), "application/json"

    def apply(self, path, match, query, headers, body) -> dict:
        assert headers["Content-Type"] == "application/apply-patch+yaml", headers["Content-Type"]
        assert query.get("fieldManager") == ["kfp-ml-pipelines"], query
        assert query.get("force") == ["true"], "the pipeline owns its serving objects: force=true"
        applied = json.loads(body)
        meta = applied["metadata"]
        assert (meta["name"], meta["namespace"]) == (match["name"], match["namespace"]), \
            "name/namespace mismatch"
        if match["plural"] in K8S_MODELS:
            check_against_model(applied, K8S_MODELS[match["plural"]], self.api_client, self.models)
        else:  # a custom resource: its metadata is an ObjectMeta, the rest must fit its CRD
            from standins.manifests import CRD_FILES, validate_custom

            check_against_model(applied["metadata"], "V1ObjectMeta", self.api_client, self.models)
            for crd_file in CRD_FILES.get(applied["kind"], ()):
                try:
                    validate_custom(applied, crd_file)
                except Exception as error:  # the API server's 422, in one line
                    raise AssertionError(f"{crd_file} refuses it: {str(error).splitlines()[0]}") from error
        before = self.objects.get(path)
        stored = json.loads(json.dumps(applied))
        if before is None:
            stored["metadata"].update(uid=f"uid-{next(self.versions)}", generation=1,
                                      resourceVersion=str(next(self.versions)))
        else:
            old_meta = before["metadata"]
            # A ConfigMap has no spec: its data is what changes it.
            spec_changed = (before.get("spec"), before.get("data")) != (applied.get("spec"), applied.get("data"))
            meta_changed = any(old_meta.get(k) != meta.get(k) for k in ("labels", "annotations"))
            stored["metadata"].update(
                uid=old_meta["uid"], generation=old_meta["generation"] + spec_changed,
                resourceVersion=str(next(self.versions)) if spec_changed or meta_changed
                else old_meta["resourceVersion"])
            if spec_changed:
                self.polls[path] = 0
            if match["plural"] == "configmaps":
                self._check_label_moves(match["namespace"], before, stored)
        self.objects[path] = stored
        self.applied.append((path, stored))
        return stored

    def model_status(self, namespace, service, port, rest) -> tuple[int, dict]:
        """TF-Serving's GET /v1/models/<model>/versions/<N> behind its Service."""
        if f"/api/v1/namespaces/{namespace}/services/{service}" not in self.objects:
            return 404, _status(404, f"services \"{service}\" not found")
        assert port == "http", f"TF-Serving's REST port is named http, not {port}"
        found = MODEL_STATUS.fullmatch(rest)
        assert found, f"unexpected TF-Serving path {rest}"
        model, version = found["model"], int(found["version"])
        config = _model_config(self.objects.get(
            f"/api/v1/namespaces/{namespace}/configmaps/serving-{model.replace('_', '-')}"))
        if config is None or version not in config.model_version_policy.specific.versions:
            return 404, {"error": f"Could not find version {version} of model {model}"}
        key = (namespace, model, version)
        self.status_reads[key] = self.status_reads.get(key, 0) + 1
        loaded = self.model_loads is not None and self.status_reads[key] >= self.model_loads
        return 200, {"model_version_status": [{"version": str(version),
                                               "state": "AVAILABLE" if loaded else "LOADING",
                                               "status": {"error_code": "OK", "error_message": ""}}]}

    def _check_label_moves(self, namespace: str, before: dict, after: dict) -> None:
        """TF-Serving's reload refuses to move a label in use to a version not loaded (server_core.cc)."""
        old, new = _model_config(before), _model_config(after)
        serving = f"/api/v1/namespaces/{namespace}/services/tf-serving-{after['metadata']['name'][len('serving-'):]}"
        if old is None or new is None or serving not in self.objects:  # no TF-Serving reads this config
            return
        loaded = set(old.model_version_policy.specific.versions) if self.model_loads is not None else set()
        for label, version in new.version_labels.items():
            if label in old.version_labels and old.version_labels[label] != version and version not in loaded:
                self.errors.append(f"TF-Serving refuses the config of {new.name}: label {label} moves from "
                                   f"version {old.version_labels[label]} to {version}, which is not loaded")

    def _with_status(self, path: str) -> dict:
        obj = json.loads(json.dumps(self.objects[path]))
        generation = obj["metadata"]["generation"]
        self.polls[path] = self.polls.get(path, 0) + 1
        if obj["kind"] == "Deployment":
            replicas = obj["spec"]["replicas"]
            done = self.rollout_polls is not None and self.polls[path] >= self.rollout_polls
            obj["status"] = {"observedGeneration": generation, "replicas": replicas,
                             "updatedReplicas": replicas if done else 0,
                             "availableReplicas": replicas if done else 0}
        elif obj["kind"] == "InferenceService":
            obj["status"] = {"observedGeneration": generation,
                             "url": f"http://{obj['metadata']['name']}.{obj['metadata']['namespace']}.example",
                             "conditions": [{"type": "Ready", "status": "True"}]}
        return obj


def _model_config(config_map: dict | None):
    """The one model's `ModelConfig` in a serving ConfigMap's `models.config`, or None."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    text = (config_map or {}).get("data", {}).get("models.config")
    if not text:
        return None
    (model,) = text_format.Parse(text, model_server_config_pb2.ModelServerConfig()).model_config_list.config
    return model


def _status(code: int, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "code": code}


# --------------------------------------------------------------------------- TFJob (training-operator 1.9)

