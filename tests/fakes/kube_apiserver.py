"""A Kubernetes API server's discovery and read answers, for `kubectl apply --dry-run=client`.

kubectl maps each manifest's apiVersion/kind to a REST resource through the server's discovery
documents (`/api`, `/apis`, `/api/v1`, `/apis/GROUP/VERSION`), then GETs the object to decide
between create and patch. This fake serves those documents in the server's own format for the
resources deploy/k8s uses, as a 1.30 cluster lists them (so a removed version such as
policy/v1beta1 is unknown, as it is there), and answers every object GET with the server's
404 Status: an empty namespace, where each object would be created. It stores nothing and
accepts no writes.
"""

from __future__ import annotations

import json
from typing import Any

from werkzeug.wrappers import Request, Response

from tests.fakes.local_http import LocalWsgiServer

VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]
# group/version -> (plural, kind, namespaced)
RESOURCES: dict[str, list[tuple[str, str, bool]]] = {
    "v1": [
        ("configmaps", "ConfigMap", True),
        ("secrets", "Secret", True),
        ("services", "Service", True),
        ("pods", "Pod", True),
        ("persistentvolumeclaims", "PersistentVolumeClaim", True),
        ("namespaces", "Namespace", False),
    ],
    "apps/v1": [
        ("deployments", "Deployment", True),
        ("statefulsets", "StatefulSet", True),
        ("daemonsets", "DaemonSet", True),
        ("replicasets", "ReplicaSet", True),
    ],
    "batch/v1": [("jobs", "Job", True), ("cronjobs", "CronJob", True)],
    "autoscaling/v1": [("horizontalpodautoscalers", "HorizontalPodAutoscaler", True)],
    "autoscaling/v2": [("horizontalpodautoscalers", "HorizontalPodAutoscaler", True)],
    "policy/v1": [("poddisruptionbudgets", "PodDisruptionBudget", True)],
    "networking.k8s.io/v1": [
        ("ingresses", "Ingress", True),
        ("ingressclasses", "IngressClass", False),
        ("networkpolicies", "NetworkPolicy", True),
    ],
}


def _json(document: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(document), status=status, content_type="application/json")


def _not_found(message: str) -> Response:
    return _json(
        {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
         "message": message, "reason": "NotFound", "code": 404},
        status=404,
    )  # fmt: skip


def _resource_list(group_version: str) -> dict[str, Any]:
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": [
            {"name": plural, "singularName": kind.lower(), "namespaced": namespaced,
             "kind": kind, "verbs": VERBS}
            for plural, kind, namespaced in RESOURCES[group_version]
        ],
    }  # fmt: skip


def _group_list() -> dict[str, Any]:
    groups: dict[str, list[str]] = {}
    for group_version in RESOURCES:
        if "/" in group_version:
            group, version = group_version.split("/")
            groups.setdefault(group, []).append(version)
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [
            {
                "name": group,
                "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
                # The newest is preferred, as the real server does for these groups.
                "preferredVersion": {
                    "groupVersion": f"{group}/{versions[-1]}",
                    "version": versions[-1],
                },
            }  # fmt: skip
            for group, versions in groups.items()
        ],
    }


class FakeKubeApiServer:
    def __init__(self) -> None:
        self.requests: list[str] = []
        self._server = LocalWsgiServer(self._app)

    @property
    def url(self) -> str:
        return self._server.base_url

    def start(self) -> FakeKubeApiServer:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        self.requests.append(f"{request.method} {request.path}")
        return self._answer(request)(environ, start_response)

    def _answer(self, request: Request) -> Response:
        if request.method != "GET":
            return _json({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                          "reason": "MethodNotAllowed", "code": 405}, status=405)  # fmt: skip
        path = request.path.rstrip("/")
        if path == "/version":
            return _json({"major": "1", "minor": "30", "gitVersion": "v1.30.0"})
        if path == "/api":
            here = {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}
            return _json(
                {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [here]}
            )
        if path == "/apis":
            return _json(_group_list())
        if path == "/api/v1":
            return _json(_resource_list("v1"))
        parts = path.strip("/").split("/")
        if len(parts) == 3 and parts[0] == "apis" and f"{parts[1]}/{parts[2]}" in RESOURCES:
            return _json(_resource_list(f"{parts[1]}/{parts[2]}"))
        # An object (or a discovery document of a version this cluster does not serve).
        return _not_found(f"{path} not found")
