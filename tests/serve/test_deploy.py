"""The Kubernetes manifests validate against the Kubernetes schemas offline, and agree with the server."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"


def _docs() -> list[tuple[str, dict]]:
    return [(f.name, d) for f in sorted(K8S.glob("*.yaml")) if f.name != "kustomization.yaml"
            for d in yaml.safe_load_all(f.read_text()) if d]


@pytest.mark.parametrize("version", ["1.29.0", "1.33.0"])
def test_manifests_validate(version):
    kv = pytest.importorskip("kubernetes_validate")
    docs = _docs()
    assert {d["kind"] for _, d in docs} == {"Deployment", "Service", "HorizontalPodAutoscaler", "Secret",
                                            "PodDisruptionBudget"}
    for name, doc in docs:
        try:
            kv.validate(doc, version, strict=True)
        except kv.ValidationError as e:
            pytest.fail(f"{name}: {e}")
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(f.name for f in K8S.glob("*.yaml") if f.name != "kustomization.yaml")


def test_a_broken_manifest_is_caught():
    kv = pytest.importorskip("kubernetes_validate")
    doc = next(d for _, d in _docs() if d["kind"] == "Deployment")
    doc["spec"]["replicas"] = "two"
    with pytest.raises(kv.ValidationError):
        kv.validate(doc, "1.33.0", strict=True)


def test_probes_and_ports_match_the_server():
    from visionloop.serve import create_app

    routes = set(create_app("/nonexistent").openapi()["paths"])
    dep = next(d for _, d in _docs() if d["kind"] == "Deployment")
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz" and c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert {"/readyz", "/healthz", "/metrics"} <= routes
    assert c["ports"][0]["containerPort"] == 8000 and "--host" in c["args"] and "0.0.0.0" in c["args"]
    svc = next(d for _, d in _docs() if d["kind"] == "Service")
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    hpa = next(d for _, d in _docs() if d["kind"] == "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"]
    for dockerfile in ("Dockerfile", "Dockerfile.cuda"):
        text = (ROOT / "deploy" / dockerfile).read_text()
        assert 'ENTRYPOINT ["visionloop", "serve"]' in text and "EXPOSE 8000" in text and "USER 10001" in text
