"""Local HTTP stand-ins for the Kubeflow Pipelines API and the Kubernetes API.

There is no cluster in the tests. These stand-ins answer, on 127.0.0.1 only,
exactly the endpoints the project calls, keep the objects in memory, and check
every request body against the official generated client models
(`kfp_server_api.models`, `kubernetes.client.models`): the body must
deserialize into the model and hold no field the model does not know. They
are stand-ins, not emulators: they model only the behaviour the project
relies on (names, versions, resourceVersion/generation, rollout status).
"""

import datetime as dt
import email.parser
import itertools
import json
import re
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import yaml

SERVE_TIMEOUT_S = 10


# --------------------------------------------------------------------------- model checks

def unknown_fields(data, type_name: str, models, path: str = "") -> list[str]:
    """JSON keys in `data` that the OpenAPI model `type_name` does not declare."""
    if type_name.startswith("list[") and isinstance(data, list):
        inner = type_name[5:-1]
        return [p for i, item in enumerate(data) for p in unknown_fields(item, inner, models, f"{path}[{i}]")]
    if type_name.startswith("dict(") and isinstance(data, dict):
        inner = type_name[type_name.index(",") + 1:-1].strip()
        return [p for key, value in data.items()
                for p in unknown_fields(value, inner, models, f"{path}.{key}")]
    klass = getattr(models, type_name, None)
    if klass is None or not getattr(klass, "openapi_types", None) or not isinstance(data, dict):
        return []
    attribute = {json_key: name for name, json_key in klass.attribute_map.items()}
    problems = []
    for key, value in data.items():
        if key not in attribute:
            problems.append(f"{path}.{key}")
        else:
            problems += unknown_fields(value, klass.openapi_types[attribute[key]], models, f"{path}.{key}")
    return problems


class _Response:
    def __init__(self, data):
        self.data = json.dumps(data)


def check_against_model(data: dict, type_name: str, api_client, models) -> object:
    """Deserialize `data` into the model (raises on bad types/enums) and refuse unknown fields."""
    problems = unknown_fields(data, type_name, models)
    if problems:
        raise AssertionError(f"fields unknown to {type_name}: {problems}")
    return api_client.deserialize(_Response(data), type_name)


# --------------------------------------------------------------------------- the server

class StandIn:
    """A threaded HTTP(S) server on 127.0.0.1 that routes to `self.routes`."""

    def __init__(self, tls: ssl.SSLContext | None = None):
        self.requests: list[tuple[str, str]] = []  # (method, path) in arrival order
        self.errors: list[str] = []  # assertion failures raised inside handlers
        self.lock = threading.Lock()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            timeout = SERVE_TIMEOUT_S

            def log_message(self, *args):  # keep pytest output clean
                pass

            def _dispatch(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                url = urlparse(self.path)
                with standin.lock:
                    standin.requests.append((self.command, url.path))
                    try:
                        status, payload, content_type = standin.handle(
                            self.command, url.path, parse_qs(url.query), self.headers, body)
                    except AssertionError as error:
                        standin.errors.append(f"{self.command} {url.path}: {error}")
                        status, payload, content_type = 400, {"message": str(error)}, "application/json"
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = _dispatch

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=SERVE_TIMEOUT_S)

    def handle(self, method, path, query, headers, body):
        raise NotImplementedError


def json_body(body: bytes) -> dict:
    return json.loads(body) if body else {}


def _filter_value(query: dict) -> str | None:
    """The display_name of an EQUALS filter, as kfp.Client and pipelines.cluster send it."""
    if "filter" not in query:
        return None
    predicates = json.loads(query["filter"][0])["predicates"]
    # kfp.Client sends the enum's number (1), pipelines.cluster its name.
    assert len(predicates) == 1 and predicates[0]["operation"] in ("EQUALS", 1), predicates
    assert predicates[0]["key"] == "display_name", predicates
    return predicates[0]["stringValue"]


# --------------------------------------------------------------------------- Kubeflow Pipelines

class KfpStandIn(StandIn):
    """The v2beta1 Pipelines API endpoints that pipelines/cluster.py calls.

    `token`: when set, every request must carry `Authorization: Bearer <token>`
    (else 401, as Kubeflow's gateway answers). `final_state`: the state a run
    reports when read back.
    """

    def __init__(self, token: str | None = None, multi_user: bool = False, final_state: str = "SUCCEEDED"):
        super().__init__()
        import kfp_server_api

        self.models = kfp_server_api.models
        self.api_client = kfp_server_api.ApiClient()
        self.token, self.multi_user, self.final_state = token, multi_user, final_state
        self.ids = (f"id-{n}" for n in itertools.count(1))
        self.pipelines: dict[str, dict] = {}
        self.versions: dict[str, dict] = {}  # version id -> version (with pipeline_id)
        self.packages: dict[str, bytes] = {}  # version id -> uploaded file
        self.experiments: dict[str, dict] = {}
        self.runs: dict[str, dict] = {}
        self.run_reads: dict[str, int] = {}
        self.recurring: dict[str, dict] = {}
        self.routes = [  # (method, path, action, model of the answer)
            ("GET", r"/apis/v2beta1/healthz", self.healthz, "V2beta1GetHealthzResponse"),
            ("GET", r"/apis/v2beta1/pipelines", self.list_pipelines, "V2beta1ListPipelinesResponse"),
            ("POST", r"/apis/v2beta1/pipelines", self.create_pipeline, "V2beta1Pipeline"),
            ("GET", r"/apis/v2beta1/pipelines/(?P<pid>[^/]+)", self.get_pipeline, "V2beta1Pipeline"),
            ("POST", r"/apis/v2beta1/pipelines/upload_version", self.upload_version,
             "V2beta1PipelineVersion"),
            ("GET", r"/apis/v2beta1/pipelines/(?P<pid>[^/]+)/versions", self.list_versions,
             "V2beta1ListPipelineVersionsResponse"),
            ("GET", r"/apis/v2beta1/pipelines/(?P<pid>[^/]+)/versions/(?P<vid>[^/]+)", self.get_version,
             "V2beta1PipelineVersion"),
            ("GET", r"/apis/v2beta1/experiments", self.list_experiments, "V2beta1ListExperimentsResponse"),
            ("POST", r"/apis/v2beta1/experiments", self.create_experiment, "V2beta1Experiment"),
            ("POST", r"/apis/v2beta1/runs", self.create_run, "V2beta1Run"),
            ("GET", r"/apis/v2beta1/runs/(?P<rid>[^/]+)", self.get_run, "V2beta1Run"),
            ("GET", r"/apis/v2beta1/recurringruns", self.list_recurring, "V2beta1ListRecurringRunsResponse"),
            ("POST", r"/apis/v2beta1/recurringruns", self.create_recurring, "V2beta1RecurringRun"),
            ("POST", r"/apis/v2beta1/recurringruns/(?P<rid>[^/:]+):(?P<action>enable|disable)",
             self.set_recurring_mode, None),
            ("DELETE", r"/apis/v2beta1/recurringruns/(?P<rid>[^/]+)", self.delete_recurring, None),
        ]

    def handle(self, method, path, query, headers, body):
        if self.token and headers.get("Authorization") != f"Bearer {self.token}":
            return 401, {"code": 16, "message": "Unauthenticated"}, "application/json"
        for route_method, pattern, action, reply_type in self.routes:
            match = re.fullmatch(pattern, path)
            if route_method == method and match:
                status, payload = action(query=query, body=body, headers=headers, **match.groupdict())
                if status == 200 and reply_type:  # the stand-in's answers follow the models too
                    check_against_model(payload, reply_type, self.api_client, self.models)
                return status, payload, "application/json"
        return 404, {"code": 5, "message": f"no route {method} {path}"}, "application/json"

    def _check(self, data: dict, type_name: str):
        return check_against_model(data, type_name, self.api_client, self.models)

    def _now(self) -> str:
        return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    def healthz(self, **_):
        return 200, {"multi_user": self.multi_user, "pipeline_store": "database"}

    def list_pipelines(self, query, **_):
        name = _filter_value(query)
        found = [p for p in self.pipelines.values() if name is None or p["display_name"] == name]
        return 200, {"pipelines": found, "total_size": len(found)} if found else {}

    def create_pipeline(self, body, **_):
        pipeline = json_body(body)
        self._check(pipeline, "V2beta1Pipeline")
        assert pipeline.get("name") and pipeline.get("display_name"), "name and display_name are required"
        assert pipeline["display_name"] not in {p["display_name"] for p in self.pipelines.values()}, \
            "duplicate pipeline name"
        pipeline.update(pipeline_id=next(self.ids), created_at=self._now())
        self.pipelines[pipeline["pipeline_id"]] = pipeline
        return 200, pipeline

    def get_pipeline(self, pid, **_):
        return (200, self.pipelines[pid]) if pid in self.pipelines else (404, {"message": "not found"})

    def upload_version(self, query, body, headers, **_):
        known = {"name", "display_name", "pipelineid", "description", "tags"}  # PipelineUploadServiceApi
        assert set(query) <= known, f"unknown upload_version parameters {set(query) - known}"
        pipeline_id = query["pipelineid"][0]
        assert pipeline_id in self.pipelines, "upload_version for an unknown pipeline"
        name = query["name"][0]
        assert name not in {v["display_name"] for v in self.versions.values()
                            if v["pipeline_id"] == pipeline_id}, "duplicate version name"
        message = email.parser.BytesParser().parsebytes(
            f"Content-Type: {headers['Content-Type']}\r\n\r\n".encode() + body)
        files = [part for part in message.get_payload()
                 if part.get_param("name", header="content-disposition") == "uploadfile"]
        assert len(files) == 1, "one uploadfile part expected"
        package = files[0].get_payload(decode=True)
        spec = next(yaml.safe_load_all(package))
        assert "root" in spec and "pipelineInfo" in spec, "the upload is not a compiled pipeline"
        version = {"pipeline_id": pipeline_id, "pipeline_version_id": next(self.ids), "display_name": name,
                   "name": name, "description": query.get("description", [""])[0], "created_at": self._now()}
        self.versions[version["pipeline_version_id"]] = version
        self.packages[version["pipeline_version_id"]] = package
        return 200, version

    def list_versions(self, pid, query, **_):
        name = _filter_value(query)
        found = [v for v in self.versions.values()
                 if v["pipeline_id"] == pid and (name is None or v["display_name"] == name)]
        return 200, {"pipeline_versions": found, "total_size": len(found)} if found else {}

    def get_version(self, pid, vid, **_):
        version = self.versions.get(vid)
        if version and version["pipeline_id"] == pid:
            return 200, version
        return 404, {"message": "not found"}

    def list_experiments(self, query, **_):
        name = _filter_value(query)
        found = [e for e in self.experiments.values() if name is None or e["display_name"] == name]
        return 200, {"experiments": found, "total_size": len(found)} if found else {}

    def create_experiment(self, body, **_):
        experiment = json_body(body)
        self._check(experiment, "V2beta1Experiment")
        experiment.update(experiment_id=next(self.ids), created_at=self._now())
        self.experiments[experiment["experiment_id"]] = experiment
        return 200, experiment

    def _check_version_reference(self, reference: dict) -> None:
        version = self.versions.get(reference.get("pipeline_version_id"))
        assert version and version["pipeline_id"] == reference.get("pipeline_id"), \
            f"unknown pipeline version {reference}"

    def create_run(self, body, **_):
        run = json_body(body)
        self._check(run, "V2beta1Run")
        assert run["experiment_id"] in self.experiments, "run in an unknown experiment"
        self._check_version_reference(run["pipeline_version_reference"])
        run.update(run_id=next(self.ids), state="PENDING", created_at=self._now())
        self.runs[run["run_id"]] = run
        return 200, run

    def get_run(self, rid, **_):
        run = dict(self.runs[rid])
        start = dt.datetime(2026, 1, 5, 6, 0, 0, tzinfo=dt.timezone.utc)
        tasks = [("download-prices", "SUCCEEDED", 30), ("train-model", "SUCCEEDED", 95),
                 ("evaluate", "SUCCEEDED", 12), ("deploy-model", "SKIPPED", 0)]
        details = []
        for name, state, seconds in tasks:
            end = start + dt.timedelta(seconds=seconds)
            details.append({"display_name": name, "state": state, "start_time": start.isoformat(),
                            "end_time": end.isoformat()})
            start = end
        # The first read finds the run still going, later reads its end.
        self.run_reads[rid] = self.run_reads.get(rid, 0) + 1
        if self.run_reads[rid] == 1:
            return 200, {**run, "state": "RUNNING"}
        run.update(state=self.final_state, finished_at=self._now(), run_details={"task_details": details})
        return 200, run

    def list_recurring(self, query, **_):
        # Two per page, so that callers must follow next_page_token.
        found = sorted(self.recurring.values(), key=lambda r: r["recurring_run_id"])
        start = int(query.get("page_token", ["0"])[0] or 0)
        page = {"recurringRuns": found[start:start + 2], "total_size": len(found)} if found else {}
        if start + 2 < len(found):
            page["next_page_token"] = str(start + 2)
        return 200, page

    def create_recurring(self, body, **_):
        recurring = json_body(body)
        self._check(recurring, "V2beta1RecurringRun")
        assert recurring["experiment_id"] in self.experiments, "recurring run in an unknown experiment"
        self._check_version_reference(recurring["pipeline_version_reference"])
        assert 1 <= int(recurring.get("max_concurrency", 1)) <= 10, "max concurrency out of 1..10"
        recurring.update(recurring_run_id=next(self.ids), created_at=self._now(),
                         max_concurrency=str(recurring.get("max_concurrency", 1)))
        self.recurring[recurring["recurring_run_id"]] = recurring
        return 200, recurring

    def set_recurring_mode(self, rid, action, **_):
        self.recurring[rid]["mode"] = action.upper()
        return 200, {}

    def delete_recurring(self, rid, **_):
        del self.recurring[rid]
        return 200, {}


# --------------------------------------------------------------------------- Kubernetes

def self_signed_tls(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A server TLS context for 127.0.0.1 and the CA file a client must trust."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver stand-in")])
    now = dt.datetime.now(dt.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=5))
                   .not_valid_after(now + dt.timedelta(hours=1))
                   .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                  critical=False)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "server.crt", directory / "server.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context, cert_file


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

TFJOB_PATH = re.compile(r"/apis/kubeflow\.org/v1/namespaces/(?P<namespace>[^/]+)/tfjobs(?:/(?P<name>[^/]+))?")
POD_LOG_PATH = re.compile(r"/api/v1/namespaces/(?P<namespace>[^/]+)/pods/(?P<name>[^/]+)/log")
# The TFJob fields of training-operator v1.9's API (kubeflow.org/v1); the
# kubernetes client has no model for a custom resource, so its parts that are
# core types (metadata, pod templates, delete options) are checked against theirs.
TFJOB_SPEC_FIELDS = {"runPolicy", "successPolicy", "tfReplicaSpecs", "enableDynamicWorker"}
RUN_POLICY_FIELDS = {"cleanPodPolicy", "ttlSecondsAfterFinished", "activeDeadlineSeconds", "backoffLimit",
                     "schedulingPolicy", "suspend", "managedBy"}
REPLICA_TYPES = {"Chief", "PS", "Worker", "Evaluator", "Master"}
REPLICA_FIELDS = {"replicas", "template", "restartPolicy"}


class TFJobStandIn(KubeStandIn):
    """The Kubernetes API with training-operator 1.9's TFJob resource, and pod logs.

    `crd=False`: the TFJob resource is not installed (404 on the group/version,
    as the API server answers). After creation a job reads Pending, then
    Created, then Running, then `outcome` ("Succeeded", "Failed", or "Never"
    to stay Running). `on_create(manifest)` runs when a job is created (a test
    plays the chief's part there). Pods `<job>-worker-<i>` exist while the job
    does; their log is `log_text(pod)`. Deleted jobs are listed in `deleted`.
    """

    def __init__(self, tls, token, role_rules, crd: bool = True, outcome: str = "Succeeded",
                 on_create=None):
        super().__init__(tls, token, role_rules)
        self.crd, self.outcome, self.on_create = crd, outcome, on_create
        self.tfjobs: dict[tuple[str, str], dict] = {}
        self.deleted: list[str] = []

    def handle(self, method, path, query, headers, body):
        if headers.get("Authorization", "").lower() != f"bearer {self.token}":
            return 401, _status(401, "Unauthorized"), "application/json"
        job_match = TFJOB_PATH.fullmatch(path)
        if job_match:
            if not self.crd:
                return 404, _status(404, "the server could not find the requested resource"), "application/json"
            verb = {"POST": "create", "GET": "get", "DELETE": "delete"}[method]
            denied = self._denied("kubeflow.org", "tfjobs", verb)
            if denied:
                return denied
            return getattr(self, f"_{verb}_tfjob")(job_match, query, body)
        log_match = POD_LOG_PATH.fullmatch(path)
        if log_match and method == "GET":
            return self._denied("", "pods/log", "get") or self._pod_log(log_match, query)
        return super().handle(method, path, query, headers, body)

    def _denied(self, group: str, plural: str, verb: str):
        if (group, plural, verb) not in self.allowed:
            return 403, _status(403, f"cannot {verb} resource \"{plural}\" in API group \"{group}\""), \
                "application/json"
        self.used.add((group, plural, verb))
        return None

    def _create_tfjob(self, match, query, body):
        assert match["name"] is None, "create goes to the collection"
        assert query.get("fieldManager") == ["kfp-ml-pipelines"], query
        job = json.loads(body)
        check_tfjob(job, self.api_client, self.models)
        key = (match["namespace"], job["metadata"]["name"])
        assert job["metadata"]["namespace"] == match["namespace"], "namespace mismatch"
        if key in self.tfjobs:
            return 409, _status(409, f"tfjobs.kubeflow.org \"{key[1]}\" already exists"), "application/json"
        job["metadata"].update(uid=f"uid-{next(self.versions)}", resourceVersion=str(next(self.versions)),
                               generation=1)
        self.tfjobs[key] = {"job": job, "polls": 0}
        if self.on_create:
            self.on_create(job)
        return 201, job, "application/json"

    def _get_tfjob(self, match, query, body):
        entry = self.tfjobs.get((match["namespace"], match["name"]))
        if entry is None:
            return 404, _status(404, f"tfjobs.kubeflow.org \"{match['name']}\" not found"), "application/json"
        entry["polls"] += 1
        job = json.loads(json.dumps(entry["job"]))
        workers = job["spec"]["tfReplicaSpecs"]["Worker"]["replicas"]
        steps = [("Created", "TFJob is created.", {"active": 0})]
        if entry["polls"] >= 3:
            steps.append(("Running", "TFJob is running.", {"active": workers}))
        if entry["polls"] >= 4 and self.outcome == "Succeeded":
            steps.append(("Succeeded", "TFJob successfully completed.", {"succeeded": workers}))
        if entry["polls"] >= 4 and self.outcome == "Failed":
            steps.append(("Failed", f"TFJob {match['namespace']}/{match['name']} has failed because 1 Worker "
                                    f"replica(s) failed.", {"failed": 1, "active": workers - 1}))
        if entry["polls"] >= 2:  # the first read finds the job before the operator has seen it
            job["status"] = {"conditions": [
                {"type": kind, "status": "True" if i == len(steps) - 1 or kind == "Created" else "False",
                 "reason": f"TFJob{kind}", "message": message} for i, (kind, message, _) in enumerate(steps)],
                "replicaStatuses": {"Worker": steps[-1][2]}}
        return 200, job, "application/json"

    def _delete_tfjob(self, match, query, body):
        options = json.loads(body) if body else {}
        check_against_model(options, "V1DeleteOptions", self.api_client, self.models)
        if self.tfjobs.pop((match["namespace"], match["name"]), None) is None:
            return 404, _status(404, f"tfjobs.kubeflow.org \"{match['name']}\" not found"), "application/json"
        self.deleted.append(match["name"])
        return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success"}, "application/json"

    def _pod_log(self, match, query):
        assert query.get("container") == ["tensorflow"], query
        job_name, _, index = match["name"].rpartition("-worker-")
        entry = self.tfjobs.get((match["namespace"], job_name))
        if entry is None or not index.isdigit() or \
                int(index) >= entry["job"]["spec"]["tfReplicaSpecs"]["Worker"]["replicas"]:
            return 404, _status(404, f"pods \"{match['name']}\" not found"), "application/json"
        return 200, self.log_text(match["name"]).encode(), "text/plain"

    @staticmethod
    def log_text(pod: str) -> str:
        return f"epoch 1/1: loss 0.5000 accuracy 0.8500 ({pod})\n"


def check_tfjob(job: dict, api_client, models) -> None:
    """A TFJob as training-operator v1.9 accepts it, core parts checked against the client models."""
    assert job["apiVersion"] == "kubeflow.org/v1" and job["kind"] == "TFJob", (job["apiVersion"], job["kind"])
    assert set(job) <= {"apiVersion", "kind", "metadata", "spec"}, set(job)
    check_against_model(job["metadata"], "V1ObjectMeta", api_client, models)
    spec = job["spec"]
    assert set(spec) <= TFJOB_SPEC_FIELDS, set(spec) - TFJOB_SPEC_FIELDS
    run_policy = spec.get("runPolicy", {})
    assert set(run_policy) <= RUN_POLICY_FIELDS, set(run_policy) - RUN_POLICY_FIELDS
    assert run_policy.get("cleanPodPolicy", "None") in ("All", "Running", "None")
    assert spec["tfReplicaSpecs"] and set(spec["tfReplicaSpecs"]) <= REPLICA_TYPES
    for replica in spec["tfReplicaSpecs"].values():
        assert set(replica) <= REPLICA_FIELDS, set(replica) - REPLICA_FIELDS
        assert isinstance(replica["replicas"], int) and replica["replicas"] >= 1
        assert replica.get("restartPolicy", "Never") in ("Always", "OnFailure", "Never", "ExitCode")
        template = check_against_model(replica["template"], "V1PodTemplateSpec", api_client, models)
        names = [container.name for container in template.spec.containers]
        assert "tensorflow" in names, f"the operator sets TF_CONFIG in the container named tensorflow: {names}"


# --------------------------------------------------------------------------- TrainJob (Kubeflow Trainer v2)

TRAINJOB_PATH = re.compile(r"/apis/trainer\.kubeflow\.org/v1alpha1/namespaces/(?P<namespace>[^/]+)/trainjobs"
                           r"(?:/(?P<name>[^/]+))?")
RUNTIME_PATH = re.compile(r"/apis/trainer\.kubeflow\.org/v1alpha1/namespaces/(?P<namespace>[^/]+)/trainingruntimes"
                          r"/(?P<name>[^/]+)")
PODS_PATH = re.compile(r"/api/v1/namespaces/(?P<namespace>[^/]+)/pods")
DISCOVERY_PATH = re.compile(r"/apis/(?P<group>[^/]+)/(?P<version>[^/]+)")


class TrainingStandIn(TFJobStandIn):
    """The Kubernetes API with any mix of the two distributed-training engines.

    `tfjob`: training-operator 1.9's TFJob resource; `trainer`: Kubeflow
    Trainer v2's TrainJob resource (validated against Trainer `trainer_crd`'s
    CRD schema, v2.3.0 or v2.1.0); `runtime`: the TensorFlow TrainingRuntime of
    deploy/trainer-tensorflow-runtime.yaml is installed in every namespace.
    Discovery (`/apis/<group>/<version>`) lists what is installed and needs no
    Role rule, as on a real API server (system:discovery). A TrainJob reads
    with no status, then its node Job active, then Complete or Failed per
    `outcome`; while it exists its pods `<job>-node-0-<i>-<suffix>` carry the
    JobSet's labels and a log (`log_text`). `on_create(manifest)` runs at
    creation for either kind.
    """

    def __init__(self, tls, token, role_rules, tfjob: bool = True, trainer: bool = True, runtime: bool = True,
                 trainer_crd: str = "v2.3.0", outcome: str = "Succeeded", on_create=None):
        super().__init__(tls, token, role_rules, crd=tfjob, outcome=outcome, on_create=on_create)
        self.trainer, self.runtime, self.trainer_crd = trainer, runtime, trainer_crd
        self.trainjobs: dict[tuple[str, str], dict] = {}

    def handle(self, method, path, query, headers, body):
        if headers.get("Authorization", "").lower() != f"bearer {self.token}":
            return 401, _status(401, "Unauthorized"), "application/json"
        discovery = DISCOVERY_PATH.fullmatch(path)
        if discovery and method == "GET":
            return self._discovery(discovery["group"], discovery["version"])
        trainer_path = TRAINJOB_PATH.fullmatch(path) or RUNTIME_PATH.fullmatch(path)
        if trainer_path:
            if not self.trainer:
                return 404, _status(404, "the server could not find the requested resource"), "application/json"
            if RUNTIME_PATH.fullmatch(path):
                return self._denied("trainer.kubeflow.org", "trainingruntimes", "get") or \
                    self._get_runtime(trainer_path)
            verb = {"POST": "create", "GET": "get", "DELETE": "delete"}[method]
            return self._denied("trainer.kubeflow.org", "trainjobs", verb) or \
                getattr(self, f"_{verb}_trainjob")(trainer_path, query, body)
        pods = PODS_PATH.fullmatch(path)
        if pods and method == "GET":
            return self._denied("", "pods", "list") or self._list_pods(pods, query)
        log_match = POD_LOG_PATH.fullmatch(path)
        if log_match and method == "GET" and "-node-0-" in log_match["name"]:
            return self._denied("", "pods/log", "get") or self._node_log(log_match, query)
        return super().handle(method, path, query, headers, body)

    def _discovery(self, group, version):
        offered = {("kubeflow.org", "v1"): (self.crd, "tfjobs", "TFJob"),
                   ("trainer.kubeflow.org", "v1alpha1"): (self.trainer, "trainjobs", "TrainJob")}
        installed, plural, kind = offered.get((group, version), (False, "", ""))
        if not installed:
            return 404, _status(404, "the server could not find the requested resource"), "application/json"
        return 200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{group}/{version}",
                     "resources": [{"name": plural, "singularName": kind.lower(), "namespaced": True, "kind": kind,
                                    "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}]}, \
            "application/json"

    def _get_runtime(self, match):
        shipped = yaml.safe_load((Path(__file__).resolve().parents[2] / "deploy" /
                                  "trainer-tensorflow-runtime.yaml").read_text())
        if not self.runtime or match["name"] != shipped["metadata"]["name"]:
            return 404, _status(404, f"trainingruntimes.trainer.kubeflow.org \"{match['name']}\" not found"), \
                "application/json"
        shipped["metadata"]["namespace"] = match["namespace"]
        return 200, shipped, "application/json"

    def _create_trainjob(self, match, query, body):
        from standins.manifests import validate_custom

        assert match["name"] is None, "create goes to the collection"
        assert query.get("fieldManager") == ["kfp-ml-pipelines"], query
        job = json.loads(body)
        try:
            validate_custom(job, f"trainer-{self.trainer_crd}-trainjobs.yaml.gz")
        except Exception as error:  # the API server's 422, in one line
            raise AssertionError(f"the TrainJob CRD refuses it: {str(error).splitlines()[0]}") from error
        assert job["metadata"]["namespace"] == match["namespace"], "namespace mismatch"
        key = (match["namespace"], job["metadata"]["name"])
        if key in self.trainjobs:
            return 409, _status(409, f"trainjobs.trainer.kubeflow.org \"{key[1]}\" already exists"), \
                "application/json"
        job["metadata"].update(uid=f"uid-{next(self.versions)}", resourceVersion=str(next(self.versions)),
                               generation=1)
        self.trainjobs[key] = {"job": job, "polls": 0}
        if self.on_create:
            self.on_create(job)
        return 201, job, "application/json"

    def _get_trainjob(self, match, query, body):
        entry = self.trainjobs.get((match["namespace"], match["name"]))
        if entry is None:
            return 404, _status(404, f"trainjobs.trainer.kubeflow.org \"{match['name']}\" not found"), \
                "application/json"
        entry["polls"] += 1
        job = json.loads(json.dumps(entry["job"]))
        nodes = job["spec"]["trainer"]["numNodes"]
        if entry["polls"] >= 2:  # the first read finds the job before Trainer has made its JobSet
            conditions, counts = [], {"active": nodes, "ready": nodes}
            if entry["polls"] >= 3 and self.outcome == "Succeeded":
                conditions = [{"type": "Complete", "status": "True", "reason": "AllJobsCompleted",
                               "message": "jobset completed successfully"}]
                counts = {"succeeded": nodes}
            if entry["polls"] >= 3 and self.outcome == "Failed":
                conditions = [{"type": "Failed", "status": "True", "reason": "FailedJobs",
                               "message": "jobset failed: job node-0 has failed because it has reached the "
                                          "specified backoff limit"}]
                counts = {"failed": 1, "active": nodes - 1}
            job["status"] = {"conditions": conditions, "jobsStatus": [{"name": "node", **counts}]}
        return 200, job, "application/json"

    def _delete_trainjob(self, match, query, body):
        options = json.loads(body) if body else {}
        check_against_model(options, "V1DeleteOptions", self.api_client, self.models)
        if self.trainjobs.pop((match["namespace"], match["name"]), None) is None:
            return 404, _status(404, f"trainjobs.trainer.kubeflow.org \"{match['name']}\" not found"), \
                "application/json"
        self.deleted.append(match["name"])
        return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success"}, "application/json"

    def _pods_of(self, namespace: str, job_name: str) -> list[dict]:
        entry = self.trainjobs.get((namespace, job_name))
        if entry is None:
            return []
        nodes = entry["job"]["spec"]["trainer"]["numNodes"]
        # Listed in no particular order, as the API server may: the chief is found by its index label.
        return [{"metadata": {"name": f"{job_name}-node-0-{index}-x{index}k9z", "namespace": namespace,
                              "labels": {"jobset.sigs.k8s.io/jobset-name": job_name,
                                         "batch.kubernetes.io/job-completion-index": str(index)}}}
                for index in reversed(range(nodes))]

    def _list_pods(self, match, query):
        (selector,) = query["labelSelector"]
        key, _, job_name = selector.partition("=")
        assert key == "jobset.sigs.k8s.io/jobset-name", selector
        pods = {"kind": "PodList", "apiVersion": "v1", "metadata": {},
                "items": self._pods_of(match["namespace"], job_name)}
        check_against_model(pods, "V1PodList", self.api_client, self.models)
        return 200, pods, "application/json"

    def _node_log(self, match, query):
        assert query.get("container") == ["node"], query
        job_name = match["name"].split("-node-0-")[0]
        if match["name"] not in {pod["metadata"]["name"] for pod in self._pods_of(match["namespace"], job_name)}:
            return 404, _status(404, f"pods \"{match['name']}\" not found"), "application/json"
        return 200, self.log_text(match["name"]).encode(), "text/plain"
