"""A local stand-in for the Kubeflow Pipelines v2beta1 API (see standins.http)."""

import datetime as dt
import email.parser
import itertools
import json
import re

import yaml

from standins.http import StandIn, check_against_model, json_body


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
    """The v2beta1 Pipelines API endpoints that pipelines/cluster/ calls.

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

