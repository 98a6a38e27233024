"""The deployment templates: valid YAML with what Kubernetes, compose and systemd need, only real
CLI options, configs that validate, and Services, ports and keys that agree with bus.topology."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import deploy
from bus.config import PipelineConfig, parse_config
from bus.topology import STAGES, all_endpoints, endpoint, metrics_port, process_count
from deploy.cli import build_parser
from deploy.stage_main import EXIT_USER_ERROR

TEMPLATES = Path(deploy.__file__).resolve().parent / "templates"
K8S = TEMPLATES / "kubernetes"
COMPOSE = TEMPLATES / "compose"
SYSTEMD = TEMPLATES / "systemd"

BINDERS = {"capture": ("frames", "work"), "embed": ("embed_in",), "match": ("match_in", "results")}
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
PORT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


# --- helpers --------------------------------------------------------------------------------
def _docs(path: Path) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    for doc in docs:
        assert isinstance(doc, dict), f"{path.name}: a YAML document is not a mapping"
    return docs


def _k8s() -> list[dict[str, Any]]:
    return [d for p in sorted(K8S.glob("*.yaml")) for d in _docs(p) if d["kind"] != "Kustomization"]


def _of_kind(kind: str) -> list[dict[str, Any]]:
    return [d for d in _k8s() if d["kind"] == kind]


def _parse_cli(argv: list[str], where: str) -> Any:
    """The argv must be accepted by the real `facestream` parser (argparse exits on a bad option)."""
    assert argv and Path(argv[0]).name == "facestream", f"{where}: not a facestream command: {argv}"
    try:
        return build_parser().parse_args(argv[1:])
    except SystemExit as exc:
        pytest.fail(f"{where}: `{shlex.join(argv)}` is not a valid facestream command line ({exc})")


def _k8s_config() -> PipelineConfig:
    (cm,) = _of_kind("ConfigMap")
    return parse_config(yaml.safe_load(cm["data"]["pipeline.yaml"]), "ConfigMap facestream-config")


def _stage_of(deployment: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """The facestream container of a Deployment and its parsed command line."""
    containers = deployment["spec"]["template"]["spec"]["containers"]
    (main,) = [c for c in containers if c.get("command", [""])[0] == "facestream"]
    return main, _parse_cli([*main["command"], *main.get("args", [])], deployment["metadata"]["name"])


def _endpoints(config: PipelineConfig, hop: str) -> list[Any]:
    return (
        all_endpoints(config, hop) if hop in ("frames", "work", "embed_in") else [endpoint(config.bus, hop)]
    )


def _mount_of(pod: dict[str, Any], container: dict[str, Any], path: str) -> tuple[str, dict[str, Any]]:
    """(path inside the volume, volume) for a file path inside the container."""
    best = max(
        (m for m in container.get("volumeMounts", []) if path.startswith(m["mountPath"].rstrip("/") + "/")),
        key=lambda m: len(m["mountPath"]),
        default=None,
    )
    assert best is not None, f"{container['name']}: nothing is mounted where {path} is"
    (volume,) = [v for v in pod["volumes"] if v["name"] == best["name"]]
    return path[len(best["mountPath"].rstrip("/")) + 1 :], volume


# --- every YAML file -----------------------------------------------------------------------
def test_every_template_is_yaml_and_every_config_validates() -> None:
    files = sorted(TEMPLATES.rglob("*.yaml"))
    assert {p.relative_to(TEMPLATES).parts[0] for p in files} == {"kubernetes", "compose", "systemd"}
    for path in files:
        _docs(path)
    for path in (COMPOSE / "pipeline.yaml", SYSTEMD / "pipeline.yaml"):
        config = parse_config(yaml.safe_load(path.read_text()), str(path))
        assert config.bus.transport == "tcp" and config.bus.curve is not None, path
    assert _k8s_config().bus.bind_any


def _documented_commands(text: str) -> list[str]:
    """`facestream ...` command lines written for people: example lines in comments and shell
    blocks (strict), backticked mentions (when they name a subcommand), and `compose run` lines
    whose entrypoint is facestream."""
    subcommands = set(_subcommands())
    text = re.sub(r"\\\n#?\s*", " ", text)  # join continued lines
    found = [
        m.group(1) for m in re.finditer(r"`(facestream [^`]+)`", text) if m.group(1).split()[1] in subcommands
    ]
    for line in text.splitlines():
        stripped = line.strip()
        example = re.match(r"#\s{2,}(\S.*)", stripped)
        body = example.group(1) if example else stripped
        if not example and stripped.startswith("#"):
            continue
        for segment in re.split(r"&&|\|\||;|\s\|\s", body):
            segment = segment.strip()
            if segment.startswith("facestream ") and (example or segment.split()[1] in subcommands):
                found.append(segment)
        run = re.search(r"\brun --rm\s+(?:-v\s+\S+\s+)*([a-z]+)\s+([a-z]+\s.*)$", body)
        if run and "compose" in body:
            found.append("facestream " + run.group(2))
    return found


def _subcommands() -> list[str]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a.choices, dict)]
    assert sub.choices is not None
    return list(sub.choices)


def test_every_documented_facestream_command_line_is_real() -> None:
    files = [p for p in TEMPLATES.rglob("*") if p.is_file()]
    seen = 0
    for path in files:
        for line in _documented_commands(path.read_text()):
            argv = shlex.split(line)
            if len(argv) == 2 and argv[1] in _subcommands():
                continue  # a mention of the command, not a command line
            _parse_cli(argv, f"{path.relative_to(TEMPLATES)}")
            seen += 1
    scaling = (TEMPLATES.parents[1] / "docs" / "scaling.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", scaling, re.S)
    for line in _documented_commands("\n".join(blocks)):
        _parse_cli(shlex.split(line), "docs/scaling.md")
        seen += 1
    assert seen >= 8, f"only {seen} command lines found: the extractor is broken"


# --- Kubernetes -------------------------------------------------------------------------------
def test_kubernetes_objects_have_the_required_fields() -> None:
    docs = _k8s()
    kinds = [d["kind"] for d in docs]
    assert sorted(set(kinds)) == sorted(
        {"ConfigMap", "Secret", "PersistentVolumeClaim", "NetworkPolicy", "Deployment", "Service"}
    )
    names = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert len(names) == len(set(names)), "two objects share a kind and name"
    api = {
        "Deployment": "apps/v1",
        "NetworkPolicy": "networking.k8s.io/v1",
    }
    for doc in docs:
        where = f"{doc['kind']} {doc['metadata'].get('name')}"
        assert doc["apiVersion"] == api.get(doc["kind"], "v1"), where
        assert DNS_LABEL.match(doc["metadata"]["name"]) and len(doc["metadata"]["name"]) <= 63, where
        if doc["kind"] == "Deployment":
            spec = doc["spec"]
            selector = spec["selector"]["matchLabels"]
            labels = spec["template"]["metadata"]["labels"]
            assert selector and selector.items() <= labels.items(), (
                f"{where}: selector does not match the pod"
            )
            assert all(isinstance(v, str) for v in labels.values()), f"{where}: label values must be strings"
            pod = spec["template"]["spec"]
            assert pod["containers"], where
            for c in pod.get("initContainers", []) + pod["containers"]:
                assert c["name"] and c["image"], where
                assert c["securityContext"]["allowPrivilegeEscalation"] is False, where
                assert c["securityContext"]["capabilities"]["drop"] == ["ALL"], where
                ports = c.get("ports", [])
                assert len({p["name"] for p in ports}) == len(ports), f"{where}: port names repeat"
                for p in ports:
                    assert PORT_NAME.match(p["name"]) and len(p["name"]) <= 15, f"{where}: port {p}"
                    assert 1 <= p["containerPort"] <= 65535, where
                for m in c.get("volumeMounts", []):
                    assert m["name"] in {v["name"] for v in pod["volumes"]}, f"{where}: mount {m}"
            assert pod["securityContext"]["runAsNonRoot"] is True, where
        elif doc["kind"] == "Service":
            assert doc["spec"]["selector"] and doc["spec"]["ports"], where
            for p in doc["spec"]["ports"]:
                assert PORT_NAME.match(p["name"]) and 1 <= p["port"] <= 65535, f"{where}: port {p}"
        elif doc["kind"] == "ConfigMap":
            assert doc["data"], where
        elif doc["kind"] == "Secret":
            assert doc["type"] == "Opaque" and doc["stringData"], where
        elif doc["kind"] == "PersistentVolumeClaim":
            assert doc["spec"]["accessModes"] and doc["spec"]["resources"]["requests"]["storage"], where
        elif doc["kind"] == "NetworkPolicy":
            assert "podSelector" in doc["spec"], where


def test_kustomization_lists_every_manifest_but_the_placeholder_secret() -> None:
    (kust,) = _docs(K8S / "kustomization.yaml")
    assert kust["kind"] == "Kustomization"
    listed = set(kust["resources"])
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.yaml"}
    assert listed == files
    kubectl = shutil.which("kubectl")
    if kubectl is not None:  # kustomize runs offline: the set really builds
        built = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=60)
        assert built.returncode == 0, built.stderr
        assert len(list(yaml.safe_load_all(built.stdout))) == len(_k8s()) - 1  # all but the Secret


def test_one_deployment_per_stage_with_real_cli_options() -> None:
    deployments = _of_kind("Deployment")
    config = _k8s_config()
    stages: dict[str, int] = {}
    for dep in deployments:
        container, args = _stage_of(dep)
        pod = dep["spec"]["template"]["spec"]
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert args.command == "stage" and labels["app.kubernetes.io/component"] == args.name
        stages[args.name] = stages.get(args.name, 0) + 1
        # The --config file is the ConfigMap's pipeline.yaml, mounted read-only.
        inner, volume = _mount_of(pod, container, str(args.config))
        assert volume["configMap"]["name"] == "facestream-config" and inner == "pipeline.yaml"
        # Probes: readiness is the stage's ready file, liveness its /metrics port.
        ready = container["readinessProbe"]["exec"]["command"]
        assert ready == ["test", "-f", str(args.ready_file)], dep["metadata"]["name"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        expected = metrics_port(config, args.name, args.index)
        assert expected is not None
        assert ports[container["livenessProbe"]["httpGet"]["port"]] == expected
        annotation = dep["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"]
        assert int(annotation) == expected
        if args.name in ("capture", "embed", "match"):
            assert dep["spec"]["replicas"] == 1, "a binding stage process owns its ports"
        if args.name == "detect":
            assert dep["spec"]["replicas"] == config.detect.workers
    assert stages == {s: 1 for s in STAGES if process_count(config, s)}  # every stage the config asks for
    assert config.embed.workers == 1 and len(config.cameras) == 1


def test_services_and_container_ports_follow_the_topology() -> None:
    config = _k8s_config()
    deployments = {_stage_of(d)[1].name: d for d in _of_kind("Deployment")}
    services = {s["metadata"]["name"]: s for s in _of_kind("Service")}
    wanted: dict[str, set[int]] = {}  # Service name -> ports bus.topology connects to
    for stage, hops in BINDERS.items():
        for hop in hops:
            for ep in _endpoints(config, hop):
                host, port = ep.connect.removeprefix("tcp://").rsplit(":", 1)
                assert ep.bind == f"tcp://0.0.0.0:{port}", "pods must bind every interface"
                wanted.setdefault(host, set()).add(int(port))
                assert host in services, f"bus.hosts names {host}, which is no Service"
                labels = deployments[stage]["spec"]["template"]["metadata"]["labels"]
                assert services[host]["spec"]["selector"].items() <= labels.items(), host
    for name, svc in services.items():
        assert {p["port"] for p in svc["spec"]["ports"]} == wanted[name], name
        (dep,) = [
            d
            for d in deployments.values()
            if svc["spec"]["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        container, _ = _stage_of(dep)
        by_name = {p["name"]: p["containerPort"] for p in container["ports"]}
        for p in svc["spec"]["ports"]:
            target = p.get("targetPort", p["port"])
            number = by_name[target] if isinstance(target, str) else target
            assert number in by_name.values() and number == p["port"], f"{name}: {p}"


def test_curve_secret_is_mounted_where_bus_curve_points() -> None:
    config = _k8s_config()
    curve = config.bus.curve
    assert curve is not None
    (secret,) = _of_kind("Secret")
    for dep in _of_kind("Deployment"):
        container, args = _stage_of(dep)
        pod = dep["spec"]["template"]["spec"]
        needed = [curve.server_public]
        if args.name in BINDERS:
            needed += [curve.server_secret]
        if args.name != "match" and args.name != "capture":
            needed += [curve.client_secret, curve.client_public]
        for path in needed:
            inner, volume = _mount_of(pod, container, str(path))
            assert volume["secret"]["secretName"] == secret["metadata"]["name"]
            items = {i["path"]: i["key"] for i in volume["secret"]["items"]}
            assert inner in items and items[inner] in secret["stringData"], f"{args.name}: {path}"
            assert volume["secret"]["defaultMode"] & 0o007 == 0, "keys must not be world-readable"
        if args.name in BINDERS:
            assert curve.authorized_clients is not None, "binding pods should check client keys"
            inner, volume = _mount_of(pod, container, str(curve.authorized_clients / "client.key"))
            assert {i["path"]: i["key"] for i in volume["secret"]["items"]}[inner] == "client.key"
        else:  # connect-only pods never see the server's secret key
            keys = [i["key"] for v in pod["volumes"] if "secret" in v for i in v["secret"]["items"]]
            assert "server.key_secret" not in keys, args.name


def test_gallery_volume_is_where_match_reads_it() -> None:
    config = _k8s_config()
    (pvc,) = _of_kind("PersistentVolumeClaim")
    (dep,) = [d for d in _of_kind("Deployment") if _stage_of(d)[1].name == "match"]
    container, _ = _stage_of(dep)
    _, volume = _mount_of(dep["spec"]["template"]["spec"], container, str(config.match.gallery))
    assert volume["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    (init,) = dep["spec"]["template"]["spec"]["initContainers"]
    assert str(config.match.gallery) in " ".join(init["command"])


# --- docker compose and the image ---------------------------------------------------------------
def _entrypoint() -> list[str]:
    lines = (TEMPLATES / "Dockerfile").read_text().splitlines()
    (entry,) = [ln for ln in lines if ln.startswith("ENTRYPOINT ")]
    found: list[str] = json.loads(entry.removeprefix("ENTRYPOINT "))
    return found


def test_dockerfile_runs_the_cli_as_a_user_without_downloads_at_run_time() -> None:
    text = (TEMPLATES / "Dockerfile").read_text()
    assert _entrypoint() == ["facestream"]
    pyproject = (TEMPLATES.parents[1] / "pyproject.toml").read_text()
    assert 'facestream = "deploy.cli:main"' in pyproject
    assert re.search(r"^USER 10001", text, re.M)
    assert "FACESTREAM_CACHE=/opt/facestream/models" in text and "ensure_sface()" in text
    assert (TEMPLATES / "Dockerfile.dockerignore").read_text().count(".git") >= 1


def test_compose_services_use_real_options_and_the_topology() -> None:
    (compose,) = _docs(COMPOSE / "docker-compose.yaml")
    services = compose["services"]
    config = parse_config(yaml.safe_load((COMPOSE / "pipeline.yaml").read_text()), "compose pipeline")
    assert config.bus.bind_any
    (config_file,) = [c for c in compose["configs"].values()]
    assert (COMPOSE / config_file["file"]).resolve() == (COMPOSE / "pipeline.yaml").resolve()
    seen = set()
    for name, svc in services.items():
        args = _parse_cli([*_entrypoint(), *svc["command"]], f"compose service {name}")
        assert args.command == "stage" and args.name == name
        seen.add(name)
        (mount,) = svc["configs"]
        assert mount["target"] == str(args.config) and mount["source"] in compose["configs"]
        for dep in svc.get("depends_on", []):
            assert dep in services, f"{name} depends on unknown {dep}"
        assert svc["read_only"] is True and svc["cap_drop"] == ["ALL"] and svc["user"] == "10001:10001"
        targets = {s["target"]: s["source"] for s in svc["secrets"]}
        assert all(src in compose["secrets"] for src in targets.values())
        curve = config.bus.curve
        assert curve is not None
        assert str(curve.server_public) in targets
        if name in BINDERS:
            assert str(curve.server_secret) in targets
            assert str(curve.authorized_clients) + "/client.key" in targets
        else:
            assert str(curve.server_secret) not in targets
            assert {str(curve.client_secret), str(curve.client_public)} <= set(targets)
    assert seen == {s for s in STAGES if process_count(config, s)}
    # The binding services' names are bus.hosts, and they expose the ports bus.topology uses.
    for stage, hops in BINDERS.items():
        assert config.bus.host_of(stage) == stage
        ports = set()
        for hop in hops:
            ports |= {ep.connect.rsplit(":", 1)[1] for ep in _endpoints(config, hop)}
        assert set(services[stage]["expose"]) == ports, stage
    overlay = services["overlay"]
    assert overlay["ports"] == [f"127.0.0.1:{config.overlay.mjpeg_port}:{config.overlay.mjpeg_port}"]
    assert config.overlay.mjpeg_host == "0.0.0.0"
    assert services["detect"]["deploy"]["replicas"] == config.detect.workers


# --- systemd --------------------------------------------------------------------------------------
def _unit(path: Path) -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        assert current is not None and "=" in line, f"{path.name}: stray line {line!r}"
        key, value = line.split("=", 1)
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def _systemd_expand(text: str, instance: str) -> str:
    """The specifiers and escapes systemd applies to ExecStart: %i, %%, $$."""
    out = re.sub(r"%(.)", lambda m: {"i": instance, "%": "%"}[m.group(1)], text)
    return out.replace("$$", "$")


def test_systemd_unit_is_hardened_and_restarts_only_on_failure(tmp_path: Path) -> None:
    unit = _unit(SYSTEMD / "facestream-stage@.service")
    service = unit["Service"]
    assert unit["Unit"]["Description"]
    assert service["Restart"] == ["on-failure"]
    assert service["RestartPreventExitStatus"] == [str(EXIT_USER_ERROR)]
    assert service["User"] == ["facestream"] or service.get("DynamicUser") == ["yes"]
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert service[key] == [value], key
    assert "WantedBy" in unit["Install"]
    if shutil.which("systemd-analyze") is None:
        return
    # systemd itself accepts the files (instance named like a real one).
    shutil.copy(SYSTEMD / "facestream-stage@.service", tmp_path / "facestream-stage@.service")
    shutil.copy(SYSTEMD / "facestream.target", tmp_path / "facestream.target")
    (tmp_path / "facestream-stage@embed-0.service").symlink_to(tmp_path / "facestream-stage@.service")
    verify = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", "facestream-stage@embed-0.service", "facestream.target"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verify.returncode == 0 and not verify.stderr.strip(), verify.stderr


@pytest.mark.parametrize("instance", ["capture-0", "detect-3", "embed-1", "match-0", "overlay-0"])
def test_systemd_instance_runs_that_stage_with_real_options(instance: str, tmp_path: Path) -> None:
    """Run ExecStart's shell as systemd would, with a stand-in `facestream` that prints its argv."""
    (exec_start,) = _unit(SYSTEMD / "facestream-stage@.service")["Service"]["ExecStart"]
    argv = shlex.split(_systemd_expand(exec_start, instance))
    assert argv[:2] == ["/bin/sh", "-c"] and argv[-1] == instance
    script = argv[2]
    binary = re.search(r"exec (\S+)", script)
    assert binary is not None
    shim = tmp_path / "facestream"
    shim.write_text(f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    shim.chmod(0o755)
    ran = subprocess.run(
        ["/bin/sh", "-c", script.replace(binary.group(1), str(shim)), *argv[3:]],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert ran.returncode == 0, ran.stderr
    args = _parse_cli([binary.group(1), *json.loads(ran.stdout)], f"ExecStart for {instance}")
    name, index = instance.rsplit("-", 1)
    assert (args.command, args.name, args.index) == ("stage", name, int(index))
    config = parse_config(yaml.safe_load((SYSTEMD / "pipeline.yaml").read_text()), "systemd pipeline")
    assert str(args.config) == "/etc/facestream/pipeline.yaml"
    assert config.bus.curve is not None and str(config.bus.curve.server_secret).startswith("/etc/facestream/")
