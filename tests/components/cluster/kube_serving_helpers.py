"""What the deploy step's API tests share: the local stand-in of the Kubernetes API, as the pod sees it.

There is no cluster here: `standins.kube_api.KubeStandIn` is an HTTPS server on
127.0.0.1 (self-signed certificate) that answers GET and server-side apply the
way the API server does for what the deploy step sends, checks each body
against the `kubernetes` client models, and enforces the Role shipped in
deploy/rbac.yaml. The deploy step's own entry point, `deploy_serving`, runs
unchanged: in-cluster configuration from a service-account folder, TLS with
that folder's CA, the deployer's token.
"""

from standins.kube_api import KubeStandIn
from standins.manifests import role_rules


def api_server(cluster_pod, **options) -> KubeStandIn:
    tls, _, monkeypatch = cluster_pod
    options.setdefault("token", "deployer-token")
    options.setdefault("role_rules", role_rules())
    server = KubeStandIn(tls, **options)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(server.port))
    return server


DEPLOYMENT = "/apis/apps/v1/namespaces/kubeflow/deployments/tf-serving-sp500"
