"""What a TFJob and a TrainJob have in common on the Kubernetes API: a custom
object that is created, read and deleted, whose errors read as one line, and
whose pods' logs are read at the end, and the one way a job is followed
(`follow`). `tfjob` and `trainjob` describe their own resource with a
`JobResource` and keep what differs (manifest, status, which pods)."""

import json
import time
from dataclasses import dataclass
from typing import Callable, Iterable

from components.cluster import api as kube_api
from components.cluster.api import FIELD_MANAGER
from components.common.errors import TrainingError

REQUEST_TIMEOUT_S = 30
GRANT_HINT = " (grant it with deploy/rbac.yaml: kubectl apply -f deploy/rbac.yaml)"


@dataclass(frozen=True)
class JobResource:
    group: str
    version: str
    plural: str
    kind: str
    error: type[TrainingError]  # what its failures are raised as
    install_hint: str  # said when the cluster does not serve the resource

    def api_error(self, what: str, error, missing_hint: str | None = None) -> TrainingError:
        """One line for an API refusal: the install hint when the resource is not served,
        the Role file when access is denied."""
        try:
            message = json.loads(error.body).get("message", error.reason)
        except (TypeError, ValueError, AttributeError):
            message = error.reason
        if error.status == 404 and "could not find the requested resource" in str(message):
            return self.error(missing_hint or self.install_hint)
        return self.error(f"cannot {what}: HTTP {error.status} {message}{GRANT_HINT if error.status == 403 else ''}")

    def create(self, api, manifest: dict) -> None:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        meta = manifest["metadata"]
        try:
            client.CustomObjectsApi(api).create_namespaced_custom_object(
                self.group, self.version, meta["namespace"], self.plural, manifest, field_manager=FIELD_MANAGER,
                _request_timeout=REQUEST_TIMEOUT_S)
        except ApiException as error:
            raise self.api_error(f"create {self.kind} {meta['name']} in {meta['namespace']}", error) from error

    def get(self, api, name: str, namespace: str) -> dict:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        try:
            return client.CustomObjectsApi(api).get_namespaced_custom_object(
                self.group, self.version, namespace, self.plural, name, _request_timeout=REQUEST_TIMEOUT_S)
        except ApiException as error:
            raise self.api_error(f"read {self.kind} {name} in {namespace}", error) from error

    def wait(self, api, name: str, namespace: str, timeout_s: float, done: str, counts: Callable[[dict], str],
             emit: Callable[[str], None]) -> dict:
        """Poll until the job's latest condition is `done`, printing each change (with `counts(job)`,
        its pods' tally); the resource's error when it fails or `timeout_s` passes."""
        deadline = time.monotonic() + timeout_s
        shown = None
        while True:
            job = self.get(api, name, namespace)
            current, message = latest_condition(job)
            tally = counts(job)
            line = f"{self.kind} {name}: {current}" + (f" ({message})" if message else "") + \
                (f"; {tally}" if tally else "")
            if line != shown:
                emit(line)
                shown = line
            if current == done:
                return job
            if current == "Failed":
                raise self.error(f"{self.kind} {name} failed: {message or 'no reason given'}")
            if time.monotonic() >= deadline:
                raise self.error(f"{self.kind} {name} did not finish in {timeout_s:.0f}s (last state {current}): "
                                 f"see kubectl -n {namespace} describe {self.kind.lower()} {name}")
            time.sleep(kube_api.POLL_INTERVAL_S)  # read when called: tests shorten it

    def delete(self, api, name: str, namespace: str) -> None:
        """Delete the job and, in the background, what it made; a job already gone is fine."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        try:
            client.CustomObjectsApi(api).delete_namespaced_custom_object(
                self.group, self.version, namespace, self.plural, name,
                body=client.V1DeleteOptions(propagation_policy="Background"), _request_timeout=REQUEST_TIMEOUT_S)
        except ApiException as error:
            if error.status != 404:
                raise self.api_error(f"delete {self.kind} {name} in {namespace}", error) from error


def latest_condition(job: dict) -> tuple[str, str]:
    """(latest true condition, its message); ("Pending", "") before the controller has reported any."""
    conditions = [c for c in job.get("status", {}).get("conditions", []) if c.get("status") == "True"]
    if not conditions:
        return "Pending", ""
    return conditions[-1]["type"], conditions[-1].get("message", "")


def pod_log(api, pod: str, namespace: str, container: str, lines: int) -> str:
    """The last `lines` lines of a pod's container, or why they cannot be read."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        return client.CoreV1Api(api).read_namespaced_pod_log(pod, namespace, container=container,
                                                             tail_lines=lines, _request_timeout=REQUEST_TIMEOUT_S)
    except ApiException as error:
        return f"(no log from {pod}: HTTP {error.status} {error.reason})"


def follow(kind: str, name: str, wait: Callable[[], object], failure: type[Exception],
           last_logs: Callable[[bool], Iterable[tuple[str, Callable[[], str]]]],
           delete: Callable[[], None], emit: Callable[[str], None]) -> None:
    """Wait for a created job; then, whatever happened, show the last lines of its pods
    (`last_logs(succeeded)`: (pod, read its log) pairs) and delete it; a `failure` from
    the wait is raised after that."""
    outcome: Exception | None = None
    try:
        wait()
    except failure as error:
        outcome = error
    finally:
        for pod, read_log in last_logs(outcome is None):
            emit(f"--- last lines of {pod} ---")
            emit(read_log().rstrip())
        delete()
        emit(f"{kind} {name} deleted")
    if outcome:
        raise outcome
