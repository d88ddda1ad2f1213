"""The Kubernetes manifests (deploy/kubernetes), rendered by kubectl's kustomize and checked
offline: each object against the Kubernetes schemas (kubernetes-validate, strict) or KEDA's
CRDs, and against the service it deploys."""

import base64
import copy
import functools
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
from ruamel.yaml import YAML
from starlette.routing import Match

from service.api.app import create_app
from service.redis_url import parse_redis_url
from service.settings import Settings
from service.storage.keys import GROUP, Keys
from tests.support.dashboards import DASHBOARDS
from tests.support.paths import ROOT
from tests.support.tools import require_installed

KUBERNETES = ROOT / "deploy" / "kubernetes"
OVERLAYS = sorted(path.name for path in (KUBERNETES / "overlays").iterdir())
# The oldest Kubernetes the manifests are meant for: kubectl 1.32's own.
KUBERNETES_VERSION = "1.32"
KEDA_CRDS = Path(__file__).parent / "data" / "keda"
KUBECTL_FROM = "kubectl 1.32 or later, https://kubernetes.io/docs/tasks/tools/"

Object = dict[str, Any]


@functools.cache
def _render(overlay: str) -> tuple[Object, ...]:
    kubectl = require_installed("kubectl", KUBECTL_FROM)
    result = subprocess.run(
        [kubectl, "kustomize", str(KUBERNETES / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in YAML(typ="safe").load_all(result.stdout) if doc)


def rendered(overlay: str = "single-redis") -> list[Object]:
    return copy.deepcopy(list(_render(overlay)))


def one(objects: list[Object], kind: str, name: str) -> Object:
    [found] = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def strict(schema: Object) -> Object:
    """The schema as the API server applies it with strict field validation (kubectl's
    default): a field an object's schema does not list is refused, unless the schema says
    x-kubernetes-preserve-unknown-fields or gives additionalProperties of its own."""
    schema = dict(schema)
    if "properties" in schema:
        schema["properties"] = {name: strict(sub) for name, sub in schema["properties"].items()}
        if "additionalProperties" not in schema and not schema.get(
            "x-kubernetes-preserve-unknown-fields"
        ):
            schema["additionalProperties"] = False
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            schema[key] = strict(schema[key])
    for key in ("allOf", "anyOf", "oneOf"):
        if key in schema:
            schema[key] = [strict(sub) for sub in schema[key]]
    return schema


@functools.cache
def _keda_schemas() -> dict[tuple[str, str], Object]:
    schemas = {}
    for path in sorted(KEDA_CRDS.glob("*.yaml")):
        crd = YAML(typ="safe").load(path)
        for version in crd["spec"]["versions"]:
            api_version = f"{crd['spec']['group']}/{version['name']}"
            schemas[api_version, crd["spec"]["names"]["kind"]] = strict(
                version["schema"]["openAPIV3Schema"]
            )
    return schemas


def schema_errors(obj: Object) -> list[str]:
    """Why the object is invalid: empty when it is valid."""
    name = f"{obj['kind']}/{obj['metadata']['name']}"
    keda = _keda_schemas().get((obj["apiVersion"], obj["kind"]))
    if keda is not None:
        validator = jsonschema.Draft202012Validator(keda)
        return [
            f"{name}: {error.json_path}: {error.message}" for error in validator.iter_errors(obj)
        ]
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"{name}: {error.json_path}: {error.message}"]
    return []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_of_an_overlay_is_valid_strictly(overlay: str) -> None:
    objects = rendered(overlay)
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "ScaledObject", "TriggerAuthentication", "NetworkPolicy"} <= kinds
    assert [error for obj in objects for error in schema_errors(obj)] == []


@pytest.mark.parametrize(("kind", "name"), [("Deployment", "api"), ("ScaledObject", "worker")])
def test_strict_validation_refuses_a_field_the_schema_does_not_list(kind: str, name: str) -> None:
    obj = one(rendered(), kind, name)
    obj["spec"]["replicaz"] = 2
    assert schema_errors(obj) != []


def configuration(objects: list[Object], container: Object) -> dict[str, str]:
    """The environment a container gets from its ConfigMaps, Secrets and env, decoded."""
    environment: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            environment |= one(objects, "ConfigMap", source["configMapRef"]["name"])["data"]
        else:
            secret = one(objects, "Secret", source["secretRef"]["name"])
            environment |= {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    environment |= {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    return environment


def container(objects: list[Object], deployment: str) -> Object:
    template = one(objects, "Deployment", deployment)["spec"]["template"]
    containers: list[Object] = template["spec"]["containers"]
    [found] = containers
    return found


def setting(environment: dict[str, str], name: str) -> Any:
    """The value the service reads for a setting: the environment's, or its default."""
    given = {name.lower(): environment[name]} if name in environment else {}
    return getattr(Settings.model_validate(given), name.lower())


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_environment_variable_is_a_setting(overlay: str) -> None:
    objects = rendered(overlay)
    for deployment in ("api", "worker"):
        names = {
            *configuration(objects, container(objects, deployment)),
            *(e["name"] for e in container(objects, deployment).get("env", [])),
        }
        assert {name for name in names if name.lower() not in Settings.model_fields} == set()
        assert all(name == name.upper() for name in names)


def settings_of(environment: dict[str, str]) -> Settings:
    """The settings a container starts with, but for the placeholder API key it refuses."""
    values = {name.lower(): value for name, value in environment.items()}
    del values["api_keys"]
    return Settings.model_validate(values)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_configuration_is_valid_settings_but_the_placeholder_key_is_refused(
    overlay: str,
) -> None:
    objects = rendered(overlay)
    environment = configuration(objects, container(objects, "api"))
    assert environment["API_KEYS"] == "change-me"
    with pytest.raises(ValueError, match="API key"):
        Settings.model_validate({name.lower(): value for name, value in environment.items()})
    assert settings_of(environment).redis_url == environment["REDIS_URL"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_webhooks_are_off_until_their_secret_is_set_for_api_and_workers_alike(
    overlay: str,
) -> None:
    objects = rendered(overlay)
    secret = "whsec_" + base64.b64encode(bytes(range(32))).decode()
    for deployment in ("api", "worker"):
        environment = configuration(objects, container(objects, deployment))
        assert environment["WEBHOOK_SECRET"] == ""
        assert settings_of(environment).webhook_secret is None
        enabled = settings_of({**environment, "WEBHOOK_SECRET": secret})
        assert enabled.webhook_secret == secret


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_api_and_workers_share_their_configuration_but_only_workers_consume(overlay: str) -> None:
    objects = rendered(overlay)
    api = configuration(objects, container(objects, "api"))
    worker = configuration(objects, container(objects, "worker"))
    assert {"KEY_PREFIX", "REDIS_URL", "MODEL"} <= set(api) & set(worker)
    assert {
        k: v for k, v in api.items() if k not in ("WORKER_CONCURRENCY", "HOST", "PORT", "DRAIN_S")
    } == {k: v for k, v in worker.items() if k != "WORKER_CONCURRENCY"}
    assert setting(api, "WORKER_CONCURRENCY") == 0
    assert setting(worker, "WORKER_CONCURRENCY") > 0


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_scaler_reads_the_streams_and_group_the_workers_consume(overlay: str) -> None:
    objects = rendered(overlay)
    settings = settings_of(configuration(objects, container(objects, "worker")))
    target = parse_redis_url(settings.redis_url or "")
    cluster = settings.redis_mode == "cluster"
    keys = Keys(settings.key_prefix, shards=settings.effective_stream_shards, tagged=cluster)
    scaled = one(objects, "ScaledObject", "worker")
    assert scaled["spec"]["scaleTargetRef"]["name"] == "worker"
    assert scaled["spec"]["minReplicaCount"] == 0
    triggers = scaled["spec"]["triggers"]
    streams = [trigger["metadata"]["stream"] for trigger in triggers]
    assert sorted(streams) == sorted(shard.stream for shard in keys.shards)
    # The same thresholds on every shard: one pod consumes them all.
    thresholds = {
        (t["metadata"]["lagCount"], t["metadata"]["activationLagCount"]) for t in triggers
    }
    assert len(thresholds) == 1
    for trigger in triggers:
        assert trigger["type"] == ("redis-cluster-streams" if cluster else "redis-streams")
        assert trigger["metadata"]["consumerGroup"] == GROUP
        assert int(trigger["metadata"]["lagCount"]) > 0
        if cluster:
            addresses = trigger["metadata"]["addresses"].split(",")
            assert addresses == [f"{host}:{port}" for host, port in target.hosts]
            password = target.password
        else:
            redis_url = urlsplit(target.url)
            assert trigger["metadata"]["address"].split(".")[0] == redis_url.hostname
            assert trigger["metadata"]["address"].endswith(f":{redis_url.port}")
            password = redis_url.password
        auth = one(objects, "TriggerAuthentication", trigger["authenticationRef"]["name"])
        [reference] = auth["spec"]["secretTargetRef"]
        assert reference["parameter"] == "password"
        secret = one(objects, "Secret", reference["name"])["data"][reference["key"]]
        assert base64.b64decode(secret).decode() == password


def test_probes_and_scrapes_are_routes_of_the_app_on_the_served_port() -> None:
    objects = rendered()
    api = container(objects, "api")
    environment = configuration(objects, api)
    [port] = api["ports"]
    assert port["containerPort"] == setting(environment, "PORT")
    assert api["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["containerPort"]}
    assert api["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["containerPort"]}
    assert setting(environment, "METRICS_ENABLED") is True
    assert setting(environment, "METRICS_REQUIRE_KEY") is False
    annotations = one(objects, "Deployment", "api")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == port["containerPort"]
    for path in ("/healthz", "/readyz", annotations["prometheus.io/path"], "/nowhere"):
        assert is_a_get_route(path) == (path != "/nowhere"), path
    service = one(objects, "Service", "api")
    assert [p["targetPort"] for p in service["spec"]["ports"]] == [port["name"]]


def is_a_get_route(path: str) -> bool:
    app = create_app(Settings(model="mock"))
    scope = {"type": "http", "path": path, "method": "GET", "root_path": "", "headers": []}
    return any(route.matches(scope)[0] is Match.FULL for route in app.routes)


@pytest.mark.parametrize("deployment", ["api", "worker"])
def test_the_grace_period_outlasts_the_graceful_timeout(deployment: str) -> None:
    objects = rendered()
    environment = configuration(objects, container(objects, deployment))
    pod = one(objects, "Deployment", deployment)["spec"]["template"]["spec"]
    # gunicorn's graceful timeout (service/server/gunicorn_conf.py), and 5 s of margin.
    stopping_s = setting(environment, "DRAIN_S") + setting(environment, "GRACEFUL_TIMEOUT_S") + 1
    assert pod["terminationGracePeriodSeconds"] > stopping_s + 5


def test_the_api_drains_until_its_readiness_probe_has_failed() -> None:
    objects = rendered()
    environment = configuration(objects, container(objects, "api"))
    probe = container(objects, "api")["readinessProbe"]
    fails_within_s = probe["periodSeconds"] * probe["failureThreshold"]
    assert setting(environment, "DRAIN_S") >= fails_within_s + 5


def dockerfile_uid() -> int:
    [user] = [
        line.split()[1]
        for line in (ROOT / "Dockerfile").read_text().split("FROM ")[-1].splitlines()
        if line.startswith("USER ")
    ]
    return int(user.split(":")[0])


@pytest.mark.parametrize("deployment", ["api", "worker"])
def test_pods_run_as_the_images_user_on_a_read_only_root(deployment: str) -> None:
    objects = rendered()
    pod = one(objects, "Deployment", deployment)["spec"]["template"]["spec"]
    [box] = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == dockerfile_uid()
    assert box["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert {"requests", "limits"} <= set(box["resources"])
    empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    writable = {m["mountPath"] for m in box["volumeMounts"] if m["name"] in empty_dirs}
    assert {str(setting(configuration(objects, box), "DATA_DIR")), "/tmp"} <= writable


def test_api_scales_on_cpu_and_keeps_one_pod_through_disruptions() -> None:
    objects = rendered()
    autoscaler = one(objects, "HorizontalPodAutoscaler", "api")["spec"]
    assert autoscaler["scaleTargetRef"]["name"] == "api"
    assert [m["resource"]["name"] for m in autoscaler["metrics"]] == ["cpu"]
    labels = one(objects, "Deployment", "api")["spec"]["template"]["metadata"]["labels"]
    selector = one(objects, "PodDisruptionBudget", "api")["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()


def pod_labels(obj: Object) -> dict[str, str]:
    labels: dict[str, str] = obj["spec"]["template"]["metadata"]["labels"]
    return labels


def selects(selector: Object, labels: dict[str, str]) -> bool:
    matched: dict[str, str] = selector.get("matchLabels", {})
    return matched.items() <= labels.items()


KEDA_OPERATOR = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keda"}},
    "podSelector": {"matchLabels": {"app": "keda-operator"}},
}
CLIENT_PORT = [{"protocol": "TCP", "port": 6379}]
CLUSTER_BUS_PORT = 16379


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_redis_keeps_an_append_only_file_and_only_the_service_reaches_it(overlay: str) -> None:
    objects = rendered(overlay)
    [redis] = [o for o in objects if o["kind"] == "StatefulSet"]
    [box] = redis["spec"]["template"]["spec"]["containers"]
    flags = dict(zip(box["args"][::2], box["args"][1::2], strict=True))
    assert box["image"].startswith("redis:7")
    assert flags["--appendonly"] == "yes"
    assert flags["--requirepass"] == "$(REDIS_PASSWORD)"
    [password] = box["env"]
    assert password["name"] == "REDIS_PASSWORD"
    cluster = flags.get("--cluster-enabled") == "yes"
    if cluster:
        assert flags["--masterauth"] == "$(REDIS_PASSWORD)"
    [policy] = [
        o["spec"]
        for o in objects
        if o["kind"] == "NetworkPolicy" and selects(o["spec"]["podSelector"], pod_labels(redis))
    ]
    clients = [pod_labels(one(objects, "Deployment", name)) for name in ("api", "worker")]
    jobs = [pod_labels(o) for o in objects if o["kind"] == "Job"]
    reach: dict[str, set[int]] = {"client": set(), "redis": set()}
    for rule in policy["ingress"]:
        ports = {port["port"] for port in rule["ports"]}
        for peer in rule["from"]:
            if peer == KEDA_OPERATOR or any(selects(peer["podSelector"], c) for c in clients):
                assert rule["ports"] == CLIENT_PORT
            elif selects(peer["podSelector"], pod_labels(redis)):
                reach["redis"] |= ports
            else:
                assert any(selects(peer["podSelector"], job) for job in jobs), peer
                assert rule["ports"] == CLIENT_PORT
    for labels in clients:
        assert any(
            selects(peer.get("podSelector", {}), labels) and "namespaceSelector" not in peer
            for rule in policy["ingress"]
            for peer in rule["from"]
        )
    # The nodes of a cluster replicate on the client port and gossip on the bus.
    assert reach["redis"] == ({6379, CLUSTER_BUS_PORT} if cluster else set())


def test_the_cluster_is_the_statefulsets_pods_three_primaries_with_a_replica_each() -> None:
    objects = rendered("redis-cluster")
    redis = one(objects, "StatefulSet", "redis-cluster")["spec"]
    headless = one(objects, "Service", redis["serviceName"])["spec"]
    assert headless["clusterIP"] == "None"
    assert headless["selector"] == redis["selector"]["matchLabels"]
    assert {p["port"] for p in headless["ports"]} == {6379, CLUSTER_BUS_PORT}
    settings = settings_of(configuration(objects, container(objects, "worker")))
    target = parse_redis_url(settings.redis_url or "")
    pods = [
        f"{redis['serviceName']}-{i}.{redis['serviceName']}.prediction-service.svc.cluster.local"
        for i in range(redis["replicas"])
    ]
    primaries = redis["replicas"] // 2
    assert [host for host, _ in target.hosts] == pods[:primaries]
    [create] = one(objects, "Job", "redis-cluster-create")["spec"]["template"]["spec"]["containers"]
    [script] = create["args"]
    assert "--cluster-replicas 1" in script
    assert f"for i in {' '.join(str(i) for i in range(redis['replicas']))};" in script
    # Explicit, not left to the default (the number of hosts REDIS_URL lists).
    assert configuration(objects, container(objects, "worker"))["STREAM_SHARDS"] == str(primaries)


def test_the_dashboard_copies_are_identical_to_the_dashboards() -> None:
    copies = KUBERNETES / "base" / "dashboards"
    originals = sorted(path.name for path in DASHBOARDS.glob("*.json"))
    assert sorted(path.name for path in copies.glob("*.json")) == originals
    for name in originals:
        assert (copies / name).read_bytes() == (DASHBOARDS / name).read_bytes(), name


def test_grafanas_sidecar_finds_every_dashboard() -> None:
    configmap = one(rendered(), "ConfigMap", "grafana-dashboards")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["data"] == {
        path.name: path.read_text() for path in sorted(DASHBOARDS.glob("*.json"))
    }
