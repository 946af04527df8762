"""deploy/ as an operator uses it, checked without Docker or a cluster: compose, Kubernetes and systemd
run exactly the Procfile's commands (each file parsed as its platform reads it), the files are what
`python -m deploy.generate` writes, the Kubernetes manifests pass the Kubernetes schemas offline
(kubernetes-validate) and the compose file holds together (services, health checks, dependencies)."""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from django.conf import settings

from deploy import generate

DEPLOY = Path(generate.__file__).resolve().parent
PROCESSES = {"web", "worker", "dispatch", "deliver", "beat", "media"}
MIGRATE = ["python", "manage.py", "migrate", "--noinput"]
# The oldest Kubernetes release still commonly run, and the newest the schemas know.
KUBERNETES_VERSIONS = ["1.29.0", kubernetes_validate.latest_version()]


# --- each platform's file, read as that platform reads it -----------------------------------------

def procfile_commands(deploy_dir: Path) -> dict[str, list[str]]:
    """Read here, not with the generator's reader: the check must not share what it checks."""
    commands = {}
    for line in (deploy_dir / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, command = line.split(":", 1)
            commands[name.strip()] = shlex.split(command)
    return commands


def compose_file(deploy_dir: Path) -> dict[str, Any]:
    return yaml.safe_load((deploy_dir / "compose.yaml").read_text())


def compose_commands(deploy_dir: Path) -> dict[str, list[str]]:
    services = compose_file(deploy_dir)["services"]
    return {name: service["command"] for name, service in services.items()
            if service.get("build") and name != "migrate"}


def manifests(deploy_dir: Path) -> dict[str, dict[str, Any]]:
    """Every Kubernetes object under kubernetes/ (the kustomization aside), by file name."""
    found = {}
    for path in sorted((deploy_dir / "kubernetes").glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document and document["kind"] != "Kustomization":
                found[f"{path.name}:{document['metadata']['name']}"] = document
    return found


def deployments(deploy_dir: Path) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["labels"]["app.kubernetes.io/component"]: doc
            for doc in manifests(deploy_dir).values() if doc["kind"] == "Deployment"}


def main_container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def kubernetes_commands(deploy_dir: Path) -> dict[str, list[str]]:
    return {name: [*main_container(doc).get("command", []), *main_container(doc).get("args", [])]
            for name, doc in deployments(deploy_dir).items()}


def systemd_unit(path: Path) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.optionxform = str  # systemd keys are case-sensitive
    unit.read_string(path.read_text())
    return unit


def exec_start(unit: configparser.ConfigParser) -> list[str]:
    """ExecStart= as systemd runs it: `%%` is a literal `%`; the program by its name in the venv."""
    argv = shlex.split(unit["Service"]["ExecStart"].replace("%%", "\0"))
    argv = [arg.replace("\0", "%") for arg in argv]
    assert "%" not in unit["Service"]["ExecStart"].replace("%%", ""), "an unescaped systemd specifier"
    assert argv[0].startswith("/"), "systemd wants an absolute path"
    return [Path(argv[0]).name, *argv[1:]]


def systemd_commands(deploy_dir: Path) -> dict[str, list[str]]:
    return {path.stem.removeprefix("consortium-"): exec_start(systemd_unit(path))
            for path in sorted((deploy_dir / "systemd").glob("consortium-*.service"))
            if path.stem != "consortium-migrate"}


def drift(deploy_dir: Path) -> dict[str, dict[str, Any]]:
    """For each platform whose commands differ from the Procfile's, the processes that differ."""
    expected = procfile_commands(deploy_dir)
    found = {"compose": compose_commands(deploy_dir), "kubernetes": kubernetes_commands(deploy_dir),
             "systemd": systemd_commands(deploy_dir)}
    report = {}
    for platform, commands in found.items():
        differing = {name: (expected.get(name), commands.get(name))
                     for name in expected.keys() | commands.keys() if expected.get(name) != commands.get(name)}
        if differing:
            report[platform] = differing
    return report


@pytest.fixture
def deploy_copy(tmp_path) -> Path:
    copy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, copy, ignore=shutil.ignore_patterns("__pycache__", ".env", "secrets"))
    return copy


# --- one source, no drift -----------------------------------------------------------------------

def test_every_platform_runs_the_procfiles_commands():
    assert set(procfile_commands(DEPLOY)) == PROCESSES
    assert drift(DEPLOY) == {}


def test_a_command_changed_on_one_platform_is_reported_as_drift(deploy_copy):
    dispatch = deploy_copy / "kubernetes" / "dispatch.yaml"
    dispatch.write_text(dispatch.read_text().replace("--concurrency, '8'", "--concurrency, '4'"))
    worker = deploy_copy / "systemd" / "consortium-worker.service"
    worker.write_text(worker.read_text().replace("--loglevel INFO", "--loglevel DEBUG"))
    (deploy_copy / "systemd" / "consortium-media.service").unlink()

    report = drift(deploy_copy)

    assert set(report) == {"kubernetes", "systemd"}
    assert set(report["kubernetes"]) == {"dispatch"} and set(report["systemd"]) == {"worker", "media"}


def test_a_process_added_to_the_procfile_alone_is_reported_as_drift(deploy_copy):
    with (deploy_copy / "Procfile").open("a") as procfile:
        procfile.write("extra: celery --app consortium worker --queues extra\n")

    assert set(drift(deploy_copy)) == {"compose", "kubernetes", "systemd"}


def test_the_files_are_what_the_generator_writes_from_the_procfile():
    assert generate.stale() == []


def test_a_hand_edit_or_a_procfile_change_without_regenerating_is_reported(deploy_copy):
    assert generate.stale(deploy_copy) == []
    compose = deploy_copy / "compose.yaml"
    compose.write_text(compose.read_text().replace("interval: 60s", "interval: 61s", 1))
    procfile = deploy_copy / "Procfile"
    procfile.write_text(procfile.read_text().replace("beat --loglevel INFO", "beat --loglevel WARNING"))
    (deploy_copy / "kubernetes" / "retired.yaml").write_text("kind: ConfigMap\n")

    stale = generate.stale(deploy_copy)

    assert stale == ["compose.yaml: differs", "kubernetes/beat.yaml: differs",
                     "systemd/consortium-beat.service: differs", "kubernetes/retired.yaml: not generated any more"]
    generate.write(deploy_copy)
    assert generate.stale(deploy_copy) == []
    assert drift(deploy_copy) == {}
    assert kubernetes_commands(deploy_copy)["beat"][-1] == "WARNING"


def test_a_procfile_process_without_a_size_is_refused(deploy_copy):
    with (deploy_copy / "Procfile").open("a") as procfile:
        procfile.write("extra: celery --app consortium worker --queues extra\n")

    with pytest.raises(ValueError, match="extra"):
        generate.render(deploy_copy)


def test_migrations_run_the_same_command_everywhere():
    services = compose_file(DEPLOY)["services"]
    (job,) = [doc for doc in manifests(DEPLOY).values() if doc["kind"] == "Job"]
    unit = systemd_unit(DEPLOY / "systemd" / "consortium-migrate.service")

    assert services["migrate"]["command"] == MIGRATE
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == MIGRATE
    assert exec_start(unit) == MIGRATE and unit["Service"]["Type"] == "oneshot"
    makefile = (DEPLOY.parent / "Makefile").read_text()
    assert f"$(BIN)/{shlex.join(MIGRATE)}" in makefile


# --- Kubernetes ---------------------------------------------------------------------------------

@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_passes_the_kubernetes_schema_strictly(version):
    found = manifests(DEPLOY)
    assert {doc["kind"] for doc in found.values()} == {"ConfigMap", "Deployment", "Job", "Service",
                                                           "PersistentVolumeClaim"}
    for name, document in found.items():
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{name} against Kubernetes {version}: {error.message} at {list(error.path)}")


def test_the_schema_check_rejects_a_broken_manifest():
    """The validation above is only as good as its ability to say no."""
    web = deployments(DEPLOY)["web"]
    broken = yaml.safe_load(yaml.safe_dump(web))
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["paht"] = "/healthz"
    misnamed = yaml.safe_load(yaml.safe_dump(web))
    misnamed["spec"]["replicas"] = "two"

    for document in (broken, misnamed):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(document, KUBERNETES_VERSIONS[-1], strict=True)


def test_the_kustomization_applies_every_manifest():
    kustomization = yaml.safe_load((DEPLOY / "kubernetes" / "kustomization.yaml").read_text())
    files = {path.name for path in (DEPLOY / "kubernetes").glob("*.yaml")} - {"kustomization.yaml"}

    assert set(kustomization["resources"]) == files


def test_web_is_probed_on_healthz_and_readyz_and_served_by_the_service():
    web = deployments(DEPLOY)["web"]
    container = main_container(web)
    (service,) = [doc for doc in manifests(DEPLOY).values() if doc["kind"] == "Service"]

    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert service["spec"]["selector"] == web["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["ports"][0]["targetPort"] in {port["name"] for port in container["ports"]}


def test_a_lagging_pipeline_never_takes_the_web_pods_out_of_the_service():
    """Readiness decides which pods the Service sends requests to; a pipeline lag past the limit fails
    /readyz in every web pod at once, so the pods' settings turn that check off (alert on the metric)."""
    probe = main_container(deployments(DEPLOY)["web"])["readinessProbe"]
    settings_ = yaml.safe_load((DEPLOY / "kubernetes" / "configmap.yaml").read_text())["data"]

    assert probe["httpGet"]["path"] == "/readyz"
    assert settings_["READY_MAX_PIPELINE_LAG_SECONDS"] == "0"


def test_beat_is_a_single_replica_replaced_never_rolled():
    beat = deployments(DEPLOY)["beat"]

    assert beat["spec"]["replicas"] == 1 and beat["spec"]["strategy"] == {"type": "Recreate"}


def test_every_pod_has_resources_secrets_the_key_file_and_waits_for_migrations():
    for name, doc in [*deployments(DEPLOY).items(), ("migrate", next(
            d for d in manifests(DEPLOY).values() if d["kind"] == "Job"))]:
        pod = doc["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert {"cpu", "memory"} <= container["resources"]["requests"].keys(), name
        assert {"cpu", "memory"} <= container["resources"]["limits"].keys(), name
        from_secret = {env["name"]: env["valueFrom"]["secretKeyRef"] for env in container["env"] if "valueFrom" in env}
        assert {"DJANGO_SECRET_KEY", "DATABASE_URL", "CELERY_BROKER_URL", "WEBHOOK_SECRET_KEYS",
                "METRICS_TOKEN"} <= from_secret.keys(), name
        settings = yaml.safe_load((DEPLOY / "kubernetes" / "configmap.yaml").read_text())["data"]
        key_file = Path(settings["CONSORTIUM_SIGNING_KEY_FILE"])
        mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
        volumes = {volume["name"]: volume for volume in pod["volumes"]}
        key_volume = next(n for n, path in mounts.items() if Path(path) == key_file.parent)
        assert volumes[key_volume]["secret"]["items"][0]["path"] == key_file.name, name
        if name != "migrate":
            (init,) = pod["initContainers"]
            assert init["command"] == ["python", "manage.py", "migrate", "--check"], name
    assert {doc["metadata"]["labels"]["app.kubernetes.io/component"] for doc in manifests(DEPLOY).values()
            if doc["kind"] == "Deployment"} == PROCESSES


def test_celery_workers_are_pinged_under_their_own_node_name():
    for name, argv in procfile_commands(DEPLOY).items():
        probe = main_container(deployments(DEPLOY)[name]).get("livenessProbe", {}).get("exec")
        if argv[:1] == ["celery"] and "worker" in argv:
            node = argv[argv.index("--hostname") + 1] if "--hostname" in argv else "celery@%h"
            assert f'--destination {node.replace("%h", chr(34) + "$HOSTNAME" + chr(34))} ' in probe["command"][-1]
        else:
            assert probe is None, name


# --- compose ------------------------------------------------------------------------------------

def test_compose_runs_every_process_after_migrations_with_health_checks():
    compose = compose_file(DEPLOY)
    services = compose["services"]
    assert set(services) == PROCESSES | {"postgres", "redis", "migrate"}
    assert set(compose_commands(DEPLOY)) == PROCESSES

    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services["migrate"]["restart"] == "no"
    for name in PROCESSES:
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name
        assert services[name]["restart"] == "unless-stopped", name
        assert "container_name" not in services[name]  # `docker compose up --scale worker=3` works
    for name, service in services.items():
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in services, name
            wanted = condition["condition"]
            assert wanted in {"service_started", "service_healthy", "service_completed_successfully"}, name
            if wanted == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits on {dependency}, which has no check"
    for name in {"postgres", "redis", "web", "worker", "dispatch", "deliver", "media"}:
        assert services[name]["healthcheck"]["test"][0] in {"CMD", "CMD-SHELL"}, name
    assert any("/readyz" in part for part in services["web"]["healthcheck"]["test"])
    assert [port for name in services for port in services[name].get("ports", [])] == ["127.0.0.1:8000:8000"]


def test_compose_declares_every_secret_and_volume_it_uses():
    compose = compose_file(DEPLOY)
    for name, service in compose["services"].items():
        assert set(service.get("secrets", [])) <= set(compose["secrets"]), name
        named = {volume.split(":")[0] for volume in service.get("volumes", []) if not volume.startswith((".", "/"))}
        assert named <= set(compose["volumes"]), name
    environment = compose["services"]["web"]["environment"]
    for secret, (variable, path) in generate.COMPOSE_SECRETS.items():
        assert environment[variable] == f"/run/secrets/{secret}" and compose["secrets"][secret]["file"] == path
    assert environment["DATABASE_URL"].startswith("postgres://") and environment["CELERY_BROKER_URL"].startswith("redis://")


# --- systemd ------------------------------------------------------------------------------------

def test_systemd_runs_each_process_after_migrations_and_beat_on_one_host_only():
    target = systemd_unit(DEPLOY / "systemd" / "consortium.target")
    wanted = set(target["Unit"]["Wants"].split())

    assert wanted == {f"consortium-{name}.service" for name in PROCESSES - {"beat"}}
    for name in PROCESSES:
        unit = systemd_unit(DEPLOY / "systemd" / f"consortium-{name}.service")
        assert "consortium-migrate.service" in unit["Unit"]["Requires"].split(), name
        assert "consortium-migrate.service" in unit["Unit"]["After"].split(), name
        assert unit["Service"]["Restart"] == "always" and unit["Service"]["User"] == "consortium", name
        assert unit["Service"]["WorkingDirectory"] == "/opt/consortium", name  # gunicorn reads ./gunicorn.conf.py
    beat = systemd_unit(DEPLOY / "systemd" / "consortium-beat.service")
    assert beat["Install"]["WantedBy"] == "multi-user.target"  # enabled by hand, on one host


# --- metrics: one directory per process group, an exporter per Celery worker ---------------------

def is_celery_worker(argv: list[str]) -> bool:
    return argv[:1] == ["celery"] and "worker" in argv


def counts_in_several_processes(argv: list[str]) -> bool:
    """gunicorn's workers and a Celery worker's pool: their counts are added up in a directory."""
    return argv[:1] == ["gunicorn"] or is_celery_worker(argv)


def host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    assert host and port.isdigit(), address
    return host, int(port)


def unit_environment(path: Path) -> dict[str, str]:
    """Every Environment= assignment of a unit (configparser keeps only the last of repeated keys)."""
    found = {}
    for line in path.read_text().splitlines():
        if line.startswith("Environment="):
            found.update(item.split("=", 1) for item in shlex.split(line.removeprefix("Environment=")))
    return found


def test_compose_gives_each_container_its_own_metrics_directory_and_each_worker_an_exporter():
    services = compose_file(DEPLOY)["services"]
    for name, argv in procfile_commands(DEPLOY).items():
        environment = services[name]["environment"]
        if not counts_in_several_processes(argv):
            assert "PROMETHEUS_MULTIPROC_DIR" not in environment and "WORKER_METRICS_ADDRESS" not in environment, name
            continue
        # In the container's own file system (no volume there), so every container, scaled ones
        # included, has its own; the process empties it when it starts.
        directory = environment["PROMETHEUS_MULTIPROC_DIR"]
        assert directory.startswith("/tmp/"), name
        assert not any(Path(directory).is_relative_to(volume.split(":")[1])
                       for volume in services[name].get("volumes", [])), name
        if is_celery_worker(argv):
            host, port = host_port(environment["WORKER_METRICS_ADDRESS"])
            # Each container has an address of its own; the scraper reaches it on compose's network.
            assert host == "0.0.0.0" and not services[name].get("ports"), name
        else:
            assert "WORKER_METRICS_ADDRESS" not in environment, name
    assert "PROMETHEUS_MULTIPROC_DIR" not in services["migrate"]["environment"]


def test_kubernetes_gives_each_pod_its_own_metrics_directory_and_each_worker_an_exporter_port():
    for name, argv in procfile_commands(DEPLOY).items():
        pod = deployments(DEPLOY)[name]["spec"]["template"]["spec"]
        container = main_container(deployments(DEPLOY)[name])
        environment = {env["name"]: env.get("value") for env in container["env"]}
        if not counts_in_several_processes(argv):
            assert "PROMETHEUS_MULTIPROC_DIR" not in environment and "WORKER_METRICS_ADDRESS" not in environment, name
            continue
        # On an emptyDir mounted in this container alone: one directory per pod, never shared.
        directory = Path(environment["PROMETHEUS_MULTIPROC_DIR"])
        mount = max((m for m in container["volumeMounts"] if directory.is_relative_to(m["mountPath"])),
                    key=lambda m: len(m["mountPath"]))
        (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
        assert "emptyDir" in volume and not mount.get("readOnly"), name
        assert all("PROMETHEUS_MULTIPROC_DIR" not in {e["name"] for e in init["env"]} for init in pod["initContainers"])
        if is_celery_worker(argv):
            host, port = host_port(environment["WORKER_METRICS_ADDRESS"])
            assert host == "0.0.0.0", name  # the pod's own address, which the scraper reaches
            assert {"name": "metrics", "containerPort": port} in container["ports"], name
        else:
            assert "WORKER_METRICS_ADDRESS" not in environment, name
    configmap = yaml.safe_load((DEPLOY / "kubernetes" / "configmap.yaml").read_text())["data"]
    assert "PROMETHEUS_MULTIPROC_DIR" not in configmap and "WORKER_METRICS_ADDRESS" not in configmap


def check_systemd_metrics(deploy_dir: Path) -> None:
    directories, ports = {}, {}
    for name, argv in procfile_commands(deploy_dir).items():
        path = deploy_dir / "systemd" / f"consortium-{name}.service"
        environment, service = unit_environment(path), systemd_unit(path)["Service"]
        if not counts_in_several_processes(argv):
            assert "PROMETHEUS_MULTIPROC_DIR" not in environment and "WORKER_METRICS_ADDRESS" not in environment, name
            continue
        # systemd creates the runtime directory empty when the unit starts and removes it when it stops.
        assert environment["PROMETHEUS_MULTIPROC_DIR"] == f"/run/{service['RuntimeDirectory']}", name
        directories[name] = environment["PROMETHEUS_MULTIPROC_DIR"]
        if is_celery_worker(argv):
            host, port = host_port(environment["WORKER_METRICS_ADDRESS"])
            assert host == "127.0.0.1" and port != 8000, name
            ports[name] = port
        else:
            assert "WORKER_METRICS_ADDRESS" not in environment, name
    # Every unit may run on one host: no directory or port is shared.
    assert len(set(directories.values())) == len(directories) and directories.keys() >= {"web", "worker"}
    assert len(set(ports.values())) == len(ports) and ports.keys() == {
        name for name, argv in procfile_commands(deploy_dir).items() if is_celery_worker(argv)}
    # The shared environment file would override every unit's own value (EnvironmentFile= wins).
    example = (deploy_dir / "systemd" / "consortium.env.example").read_text()
    assert "PROMETHEUS_MULTIPROC_DIR" not in example and "WORKER_METRICS_ADDRESS" not in example


def test_systemd_gives_each_unit_its_own_runtime_directory_and_each_worker_its_own_port():
    check_systemd_metrics(DEPLOY)


def readme_metrics_ports(deploy_dir: Path) -> dict[str, int]:
    """The systemd workers' ports as deploy/README.md tells the operator: `127.0.0.1:9101 (worker), ...`."""
    text = " ".join((deploy_dir / "README.md").read_text().split())
    (listed,) = re.findall(r"serve theirs on (?:<!--[^>]*-->)?\s*(127\.0\.0\.1:[^;]*?)(?:<!--[^>]*-->)?;", text)
    return {name: int(port) for port, name in re.findall(r"(\d+) \((\w+)\)", listed)}


def unit_metrics_ports(deploy_dir: Path) -> dict[str, int]:
    return {path.stem.removeprefix("consortium-"): host_port(unit_environment(path)["WORKER_METRICS_ADDRESS"])[1]
            for path in sorted((deploy_dir / "systemd").glob("consortium-*.service"))
            if "WORKER_METRICS_ADDRESS" in unit_environment(path)}


def test_the_readme_names_each_systemd_workers_metrics_port_as_its_unit_sets_it():
    assert readme_metrics_ports(DEPLOY) == unit_metrics_ports(DEPLOY)
    assert set(unit_metrics_ports(DEPLOY)) == {name for name, argv in procfile_commands(DEPLOY).items()
                                               if is_celery_worker(argv)}


def test_workers_reordered_in_the_procfile_move_their_ports_in_the_readme_too(deploy_copy):
    procfile = deploy_copy / "Procfile"
    lines = procfile.read_text().splitlines(keepends=True)
    dispatch = next(i for i, line in enumerate(lines) if line.startswith("dispatch:"))
    deliver = next(i for i, line in enumerate(lines) if line.startswith("deliver:"))
    lines[dispatch], lines[deliver] = lines[deliver], lines[dispatch]
    procfile.write_text("".join(lines))
    before = readme_metrics_ports(deploy_copy)

    assert "README.md: differs" in generate.stale(deploy_copy)
    generate.write(deploy_copy)

    assert generate.stale(deploy_copy) == []
    assert readme_metrics_ports(deploy_copy) == unit_metrics_ports(deploy_copy) != before
    assert (readme_metrics_ports(deploy_copy)["deliver"], readme_metrics_ports(deploy_copy)["dispatch"]) == (
        before["dispatch"], before["deliver"])


def test_a_port_written_by_hand_in_the_readme_is_found(deploy_copy):
    """The checks above are only as good as their ability to say no."""
    readme = deploy_copy / "README.md"
    readme.write_text(readme.read_text().replace("9104 (media)", "9105 (media)"))

    assert readme_metrics_ports(deploy_copy) != unit_metrics_ports(deploy_copy)
    assert generate.stale(deploy_copy) == ["README.md: differs"]


@pytest.mark.parametrize("workers, listed", [
    ([], "none (the Procfile runs no Celery worker)"),
    (["worker"], "127.0.0.1:9101 (worker)"),
    (["worker", "media"], "127.0.0.1:9101 (worker) and 9102 (media)"),
])
def test_the_readme_lists_the_ports_of_any_number_of_workers(workers, listed):
    processes = {"web": ["gunicorn", "consortium.wsgi"], **{name: ["celery", "-A", "consortium", "worker", "-n",
                                                                    f"{name}@%h"] for name in workers}}
    start, end = generate.README_PORTS
    assert f"{start}{listed}{end}" in generate.readme(DEPLOY / "README.md", processes)


@pytest.mark.parametrize("unit, before, after", [
    ("dispatch", "Environment=PROMETHEUS_MULTIPROC_DIR=/run/consortium-metrics-dispatch",
     "Environment=PROMETHEUS_MULTIPROC_DIR=/run/consortium-metrics-web"),
    ("media", "WORKER_METRICS_ADDRESS=127.0.0.1:9104", "WORKER_METRICS_ADDRESS=127.0.0.1:9101"),
    ("deliver", "Environment=WORKER_METRICS_ADDRESS=127.0.0.1:9103\n", ""),
])
def test_a_metrics_directory_or_port_shared_or_missing_on_a_host_is_found(deploy_copy, unit, before, after):
    """The check above is only as good as its ability to say no."""
    path = deploy_copy / "systemd" / f"consortium-{unit}.service"
    assert before in path.read_text()
    path.write_text(path.read_text().replace(before, after))
    with pytest.raises((AssertionError, KeyError)):
        check_systemd_metrics(deploy_copy)


# --- media jobs: one folder for the web that takes the uploads and the workers that read them -----

def container_var_dir(deploy_dir: Path) -> str:
    """CONSORTIUM_VAR_DIR as the image sets it."""
    (value,) = re.findall(r"\bCONSORTIUM_VAR_DIR=(\S+)", (deploy_dir / "Dockerfile").read_text())
    return value


def media_job_dir(deploy_dir: Path) -> str:
    """Where the containers' processes keep media jobs: settings.MEDIA_JOB_DIR, under the image's VAR_DIR."""
    return str(Path(container_var_dir(deploy_dir)) / settings.MEDIA_JOB_DIR.relative_to(settings.VAR_DIR))


def media_job_processes(deploy_dir: Path) -> set[str]:
    """The web (it takes the uploads) and every Celery worker consuming a queue a media task goes to
    (by settings.CELERY_TASK_ROUTES): the job runs there, and the media sweep deletes files there."""
    queues = {route["queue"] for task, route in settings.CELERY_TASK_ROUTES.items() if task.startswith("media.")}
    assert queues, "no media task is routed"
    found = set()
    for name, argv in procfile_commands(deploy_dir).items():
        consumed = set(argv[argv.index("--queues") + 1].split(",")) if "--queues" in argv else queues
        if argv[:1] == ["gunicorn"] or (is_celery_worker(argv) and consumed & queues):
            found.add(name)
    return found


def check_compose_media_jobs(deploy_dir: Path) -> None:
    compose = compose_file(deploy_dir)
    target, sharing = media_job_dir(deploy_dir), media_job_processes(deploy_dir)
    volumes = {}
    for name in procfile_commands(deploy_dir):
        mounted = {volume.split(":")[0] for volume in compose["services"][name].get("volumes", [])
                   if volume.split(":")[1] == target}
        if name in sharing:
            (volumes[name],) = mounted
        else:
            assert not mounted, f"{name} takes no media work"
    (volume,) = set(volumes.values())  # one named volume, the same for all of them
    assert volume in compose["volumes"] and not volume.startswith((".", "/"))


def check_kubernetes_media_jobs(deploy_dir: Path) -> None:
    target, sharing = media_job_dir(deploy_dir), media_job_processes(deploy_dir)
    claims = {doc["metadata"]["name"]: doc for doc in manifests(deploy_dir).values()
              if doc["kind"] == "PersistentVolumeClaim"}
    used = set()
    for name, doc in deployments(deploy_dir).items():
        pod = doc["spec"]["template"]["spec"]
        mounts = [m for m in main_container(doc)["volumeMounts"] if m["mountPath"] == target]
        if name not in sharing:
            assert not mounts, f"{name} takes no media work"
            continue
        (mount,) = mounts
        assert not mount.get("readOnly"), name
        (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
        used.add(volume["persistentVolumeClaim"]["claimName"])
    (claim,) = used  # one claim, the same for all of them
    # Web and worker run several replicas, on any node: every one mounts it at once, read and write.
    assert claims[claim]["spec"]["accessModes"] == ["ReadWriteMany"]


def test_compose_shares_one_media_job_volume_among_the_web_and_the_workers_that_take_media_work():
    assert media_job_processes(DEPLOY) == {"web", "worker", "media"}
    check_compose_media_jobs(DEPLOY)


def test_kubernetes_shares_one_read_write_many_claim_among_the_web_and_the_workers_that_take_media_work():
    check_kubernetes_media_jobs(DEPLOY)


def test_the_image_makes_the_media_job_folder_its_user_owns():
    """A new compose volume takes the owner of the image's folder at its mount point (else root's)."""
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    made = re.search(r"install -d -o consortium -g consortium -m 0700 ([^\n\\]+)", dockerfile)
    assert made and media_job_dir(DEPLOY) in made.group(1).split()


def test_systemd_units_on_a_host_share_one_var_dir():
    """One host: one CONSORTIUM_VAR_DIR (StateDirectory) for every unit. Across hosts the operator
    mounts a shared file system at its media-jobs folder (deploy/README.md)."""
    found = {name: unit_environment(DEPLOY / "systemd" / f"consortium-{name}.service")["CONSORTIUM_VAR_DIR"]
             for name in media_job_processes(DEPLOY)}
    assert len(set(found.values())) == 1


@pytest.mark.parametrize("edit", ["compose: media's volume", "compose: worker's volume", "kubernetes: media's claim",
                                  "kubernetes: read-write-once"])
def test_a_media_job_folder_not_shared_is_found(deploy_copy, edit):
    """The checks above are only as good as their ability to say no."""
    if edit.startswith("compose"):
        service = edit.split()[1].removesuffix("'s")
        compose = compose_file(deploy_copy)
        compose["services"][service].pop("volumes")
        (deploy_copy / "compose.yaml").write_text(yaml.safe_dump(compose))
        check = check_compose_media_jobs
    elif edit == "kubernetes: media's claim":
        path = deploy_copy / "kubernetes" / "media.yaml"
        doc = yaml.safe_load(path.read_text())
        pod = doc["spec"]["template"]["spec"]
        (volume,) = [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
        volume.pop("persistentVolumeClaim")
        volume["emptyDir"] = {}
        path.write_text(yaml.safe_dump(doc))
        check = check_kubernetes_media_jobs
    else:
        (path,) = [p for p in (deploy_copy / "kubernetes").glob("*.yaml") if "PersistentVolumeClaim" in p.read_text()]
        path.write_text(path.read_text().replace("ReadWriteMany", "ReadWriteOnce"))
        check = check_kubernetes_media_jobs
    with pytest.raises((AssertionError, KeyError, ValueError)):
        check(deploy_copy)
