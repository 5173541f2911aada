"""Agents in containers (endpoint.scan.containers): which container a process runs in, its name and image
from the runtime's own metadata, and its project read through its root with every link resolved there.

The cgroup and mountinfo shapes are the ones the runtimes write (each case cites where it is shown); a test
cannot put a real process into a ``docker-<id>.scope`` cgroup without a runtime, so those are parsed from
text, and ``container_of`` is run over a folder laid out as /proc is. The metadata readers read files
shaped as Docker and Podman write them. The reading through a root is tested on real processes in a real
mount and pid namespace this test makes (``unshare`` + ``pivot_root``), as a container runtime does.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

import signatures
from contract import scan as contract
from contract.validation import checked
from endpoint.scan import containers, safeio
from endpoint.scan.containers import (
    InRoot,
    container_of,
    docker_metadata,
    parse_cgroup,
    parse_mountinfo,
    podman_metadata,
)
from endpoint.scan.engine.registry import Sighting
from endpoint.scan.evidence import ProcessRecord
from endpoint.scan.projects import ProjectReader, interests_of, root_of

LIB = signatures.load()
ID = "4b7a1c0e9d2f3a5b6c7d8e9f0a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3"
POD = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


# -- which container: /proc/PID/cgroup and /proc/PID/mountinfo -------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    # Docker, cgroup v1 with the cgroupfs driver: /sys/fs/cgroup/memory/docker/<longid>/
    # (https://docs.docker.com/engine/containers/runmetrics/#find-the-cgroup-for-a-given-container)
    (f"12:pids:/docker/{ID}\n11:memory:/docker/{ID}\n1:name=systemd:/docker/{ID}\n0::/system.slice/containerd.service\n",
     ("docker", ID)),
    # Docker, cgroup v2 with the systemd driver: /sys/fs/cgroup/system.slice/docker-<longid>.scope/ (same page)
    (f"0::/system.slice/docker-{ID}.scope\n", ("docker", ID)),
    # Podman as root: machine.slice/libpod-<id>.scope, with the container's own "container" sub-cgroup when it
    # runs systemd (https://docs.podman.io/en/latest/markdown/podman-run.1.html, --cgroups and --cgroup-parent)
    (f"0::/machine.slice/libpod-{ID}.scope/container\n", ("podman", ID)),
    # rootless Podman: below the user's systemd instance
    (f"0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope\n", ("podman", ID)),
    # Kubernetes, cgroup v1 cgroupfs: /kubepods/<qos>/pod<uid>/<container id>
    # (https://kubernetes.io/docs/concepts/architecture/cgroups/)
    (f"11:memory:/kubepods/besteffort/pod{POD}/{ID}\n", ("kubernetes", ID)),
    # Kubernetes on cgroup v2 with systemd and containerd's CRI plugin
    (f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{POD.replace('-', '_')}.slice/"
     f"cri-containerd-{ID}.scope\n", ("containerd", ID)),
    # CRI-O (https://github.com/cri-o/cri-o/blob/main/docs/crio.conf.5.md, conmon_cgroup / cgroup_manager)
    (f"0::/kubepods.slice/kubepods-pod{POD.replace('-', '_')}.slice/crio-{ID}.scope\n", ("cri-o", ID)),
    # BuildKit's RUN steps: its executor's cgroup parent "buildkit", ids of 25 base-36 characters
    # (https://github.com/moby/buildkit/blob/master/executor/oci/spec.go)
    ("0::/buildkit/xo5t0a6ngt8l7r0c1qsq3w8bt\n", ("buildkit", "xo5t0a6ngt8l7r0c1qsq3w8bt")),
])
def test_cgroup_shapes_name_the_runtime_and_the_id(text: str, expected: tuple[str, str]) -> None:
    assert parse_cgroup(text) == expected


@pytest.mark.parametrize("text", [
    "0::/user.slice/user-1000.slice/session-2.scope\n",  # a desktop session
    "0::/\n",
    "4:memory:/process_api/b8bd501c0df85b4282388a47bcf72349\n",  # a sandbox's cgroup: hex, but no runtime's
    "0::/system.slice/docker-../../../etc.scope\n",  # an id that is no hex: never used, never a path
    f"0::/system.slice/docker-{ID.upper()}.scope\n",
    f"0::/system.slice/docker-{ID[:-1]}.scope\n",
    "0::/docker/not-an-id\n",
    "garbage without colons\n\x00\xff",
])
def test_host_cgroups_and_ids_that_are_no_ids_name_no_container(text: str) -> None:
    assert parse_cgroup(text) is None


def test_mountinfo_shows_the_runtimes_bind_mounts() -> None:
    # proc_pid_mountinfo(5): field 4 is the mount's root within its filesystem
    # (https://man7.org/linux/man-pages/man5/proc_pid_mountinfo.5.html); Docker bind-mounts the container's
    # hostname, hosts and resolv.conf from /var/lib/docker/containers/<id>/, Podman from its userdata folder
    docker = (f"640 600 0:52 / / rw,relatime master:300 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/AB\n"
              f"651 640 8:1 /var/lib/docker/containers/{ID}/resolv.conf /etc/resolv.conf rw,relatime - ext4 /dev/sda1 rw\n"
              f"652 640 8:1 /var/lib/docker/containers/{ID}/hostname /etc/hostname rw,relatime - ext4 /dev/sda1 rw\n")
    podman = (f"700 650 0:61 /containers/storage/overlay-containers/{ID}/userdata/hosts /etc/hosts rw,nosuid "
              f"- tmpfs tmpfs rw\n")
    assert parse_mountinfo(docker) == ("docker", ID)
    assert parse_mountinfo(podman) == ("podman", ID)
    assert parse_mountinfo(Path("/proc/self/mountinfo").read_text()) is None
    assert parse_mountinfo(f"1 2 8:1 /var/lib/docker/containers/{ID}/notes /x rw - ext4 /dev/sda1 rw\n") is None


# -- the runtimes' metadata ------------------------------------------------------------------------------

def _docker_config(folder: Path, ident: str, body: str | bytes) -> Path:
    path = folder / ident / "config.v2.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body if isinstance(body, bytes) else body.encode())
    return path


# config.v2.json as dockerd writes it: the Container struct's JSON, "Name" with its leading "/", the image as
# the user named it in "Config"."Image" (https://github.com/moby/moby/blob/master/container/container.go and
# https://github.com/moby/moby/blob/master/api/types/container/config.go)
DOCKER_CONFIG = json.dumps({
    "ID": ID, "Created": "2025-03-04T10:11:12.123456789Z", "Path": "python", "Args": ["-m", "app.worker"],
    "Config": {"Hostname": ID[:12], "Env": ["OPENAI_API_KEY=FAKE-openai-key-0000", "PATH=/usr/local/bin"],
               "Cmd": ["python", "-m", "app.worker"], "Image": "ghcr.io/acme/invoice-agent:1.4",
               "WorkingDir": "/srv/agent", "Labels": {}},
    "Image": "sha256:" + "ab" * 32, "Name": "/invoice-agent", "Driver": "overlay2", "RestartCount": 0,
    "State": {"Running": True, "Pid": 4242},
})


def test_docker_metadata_names_the_container_and_its_image(tmp_path: Path) -> None:
    _docker_config(tmp_path, ID, DOCKER_CONFIG)
    assert docker_metadata(ID, str(tmp_path)) == ("invoice-agent", "ghcr.io/acme/invoice-agent:1.4")


def test_hostile_docker_metadata_is_refused_with_a_reason(tmp_path: Path) -> None:
    errors: list[tuple[str, str]] = []
    _docker_config(tmp_path, ID, b"{" + b" " * (containers.DOCKER_CONFIG_BYTES + 10) + b"}")
    assert docker_metadata(ID, str(tmp_path), errors) is None
    assert errors[-1][0] == "too_large"
    _docker_config(tmp_path, ID, b"\x00\x01 not json at all")
    assert docker_metadata(ID, str(tmp_path), errors) is None
    assert errors[-1][0] in ("not_json", "binary")
    _docker_config(tmp_path, ID, '{"Name": 7, "Config": ["no", "object"]}')  # JSON, the wrong shapes
    assert docker_metadata(ID, str(tmp_path), errors) == ("", "")
    _docker_config(tmp_path, ID, json.dumps({"Name": "/" + "n" * 10_000, "Config": {"Image": "i" * 10_000}}))
    name, image = docker_metadata(ID, str(tmp_path)) or ("", "")
    assert len(name) == len(image) == containers.NAME_CHARS
    # an id that is no container id is never made into a path: not even one that exists
    (tmp_path / "x").mkdir()
    _docker_config(tmp_path, "x/..", DOCKER_CONFIG)
    assert docker_metadata("x/..", str(tmp_path)) is None
    # a config that links out of the containers folder is not followed
    secret = tmp_path.parent / "elsewhere.json"
    secret.write_text(DOCKER_CONFIG)
    other = "f" * 64
    (tmp_path / other).mkdir()
    (tmp_path / other / "config.v2.json").symlink_to(secret)
    assert docker_metadata(other, str(tmp_path), errors) is None
    assert errors[-1][0] == "symlink_escape"


def test_a_docker_config_not_owned_by_root_is_not_believed(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give the file to another user")
    errors: list[tuple[str, str]] = []
    path = _docker_config(tmp_path, ID, DOCKER_CONFIG)
    os.chown(path, 65534, 65534)
    assert docker_metadata(ID, str(tmp_path), errors) is None
    assert errors[-1][0] == "not_owner"


# containers.json as containers/storage writes it (Podman's store): a list of the Container struct
# (https://github.com/containers/storage/blob/main/containers.go: id, names, image, layer, metadata, created),
# "metadata" being Podman's own JSON in a string (image-name, image-id, name, created-at)
def _podman_store(store: Path, entries: list[dict[str, Any]]) -> None:
    folder = store / "overlay-containers"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "containers.json").write_text(json.dumps(entries))


PODMAN_ENTRY = {"id": ID, "names": ["crew-runner"], "image": "cd" * 32, "layer": "ef" * 32,
                "metadata": json.dumps({"image-name": "docker.io/library/python:3.12-slim", "image-id": "cd" * 32,
                                        "name": "crew-runner", "created-at": 1733390000}),
                "created": "2025-03-04T10:11:12.123Z", "flags": {"MountLabel": ""}}


def test_podman_metadata_names_the_container_and_its_image(tmp_path: Path) -> None:
    _podman_store(tmp_path, [{**PODMAN_ENTRY, "id": "a" * 64, "names": ["other"]}, PODMAN_ENTRY])
    assert podman_metadata(ID, str(tmp_path)) == ("crew-runner", "docker.io/library/python:3.12-slim")
    assert podman_metadata("b" * 64, str(tmp_path)) is None
    _podman_store(tmp_path, [{**PODMAN_ENTRY, "metadata": "{not json"}])  # falls back to the image id
    assert podman_metadata(ID, str(tmp_path)) == ("crew-runner", "cd" * 32)
    errors: list[tuple[str, str]] = []
    (tmp_path / "overlay-containers" / "containers.json").write_text("[{]")
    assert podman_metadata(ID, str(tmp_path), errors) is None and errors[-1][0] == "not_json"


def test_container_of_reads_a_proc_shaped_folder_and_the_metadata(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    (proc / "77").mkdir(parents=True)
    (proc / "77" / "cgroup").write_text(f"0::/system.slice/docker-{ID}.scope\n")
    (proc / "77" / "mountinfo").write_text("")
    docker = tmp_path / "docker"
    _docker_config(docker, ID, DOCKER_CONFIG)
    found = container_of(77, 0, proc=str(proc), docker=str(docker), podman=str(tmp_path / "none"))
    assert found == ("docker", ID, "invoice-agent", "ghcr.io/acme/invoice-agent:1.4")
    # the docker- scope of a Podman container under the systemd driver is found in Podman's store
    shutil.rmtree(docker)
    _podman_store(tmp_path / "podman", [PODMAN_ENTRY])
    found = container_of(77, 0, proc=str(proc), docker=str(docker), podman=str(tmp_path / "podman"))
    assert found == ("podman", ID, "crew-runner", "docker.io/library/python:3.12-slim")
    # no metadata readable: the container is still named by runtime and id
    found = container_of(77, 0, proc=str(proc), docker=str(docker), podman=str(tmp_path / "none"))
    assert found == ("docker", ID, "", "")
    (proc / "77" / "cgroup").write_text("0::/user.slice/user-1000.slice/session-2.scope\n")
    assert container_of(77, 0, proc=str(proc)) is None
    assert container_of(78, 0, proc=str(proc)) is None  # gone


def test_the_sighting_carries_the_container_as_the_contract_says() -> None:
    sighting = Sighting(("dev", "x"), None, "app.worker in /srv/agent", "", "enterprise", "alice")
    record = ProcessRecord(4242, 1, "python3", "/usr/bin/python3", ["python3", "-m", "app.worker"], "alice", 1000,
                           0.0, container=("docker", ID, "invoice-agent", "ghcr.io/acme/invoice-agent:1.4"))
    sighting.processes[4242] = record
    sighting.processes[4243] = ProcessRecord(4243, 1, "python3", "/usr/bin/python3", ["python3"], "alice", 1000, 0.0)
    doc = sighting.to_dict("2025-03-04T10:11:12Z")
    assert doc["processes"][0]["container"] == {"runtime": "docker", "id": ID, "name": "invoice-agent",
                                                "image": "ghcr.io/acme/invoice-agent:1.4"}
    assert "container" not in doc["processes"][1]
    TypeAdapter(checked(contract.Sighting)).validate_python(doc)
    from endpoint.scan.run import Processes, decode_processes, encode_processes

    again = decode_processes(encode_processes(Processes([record], [], {})), LIB).records[0]
    assert again.container == record.container


# -- reading through the root of a process in another mount namespace -------------------------------------

def _in_namespace(tmp_path: Path, spawn: Any) -> tuple[int, Path]:
    """A Python process pid 1 of its own pid namespace, pivoted into a root of its own (as a runtime starts a
    container): its host pid and the folder that is its root."""
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("pivot_root"):
        pytest.skip("needs root and util-linux's unshare and pivot_root")
    import psutil

    newroot = tmp_path / "rootfs"
    binds = [d for d in ("usr", "lib", "lib64", "bin") if os.path.isdir(f"/{d}") and not os.path.islink(f"/{d}")]
    for folder in [*binds, "proc", ".old", "etc"]:
        (newroot / folder).mkdir(parents=True, exist_ok=True)
    for folder in ("lib", "lib64", "bin", "sbin"):  # a merged-/usr system's links, as they are
        if os.path.islink(f"/{folder}"):
            os.symlink(os.readlink(f"/{folder}"), newroot / folder)
    (newroot / "etc" / "shadow").write_text("root:FAKE-container-shadow:19000:0:99999:7:::\n")
    agent = newroot / "srv" / "agent"
    (agent / "app").mkdir(parents=True)
    (agent / "run.py").write_text("import time\ntime.sleep(120)\nfrom app.graph import graph\n")
    (agent / "app" / "__init__.py").write_text("")
    (agent / "app" / "graph.py").write_text("from langgraph.graph import StateGraph\nfrom app import tools\n"
                                            "graph = StateGraph(dict)\n")
    (agent / "langgraph").mkdir()
    (agent / "langgraph" / "__init__.py").write_text("")  # vendored: its interpreter's path holds the framework
    (agent / "shadow-abs").symlink_to("/etc/shadow")  # the container's /etc/shadow, never the host's
    (agent / "shadow-up").symlink_to("../../../../../../../../etc/shadow")  # ".." stops at its "/"
    (agent / "app" / "tools.py").symlink_to("/etc/shadow")  # a module that links out of the project
    mounts = " && ".join(f"mount --bind /{d} {newroot}/{d}" for d in binds)
    script = (f"mount --make-rprivate / && mount --bind {newroot} {newroot} && {mounts} && "
              f"mount -t proc proc {newroot}/proc && cd {newroot} && pivot_root . .old && umount -l /.old && "
              f"cd /srv/agent && exec /usr/bin/python3 /srv/agent/run.py")
    started = spawn(["unshare", "--mount", "--pid", "--fork", "sh", "-c", script], cwd=tmp_path)
    deadline = time.monotonic() + 20
    found: list[int] = []
    while not found and time.monotonic() < deadline:
        try:
            found = [c.pid for c in psutil.Process(started.pid).children(recursive=True)
                     if "/srv/agent/run.py" in c.cmdline()]
        except psutil.Error:
            pass
        time.sleep(0.1)
    assert found, "the namespaced interpreter did not start"
    return found[0], newroot


def test_a_process_in_another_mount_namespace_is_read_through_its_root(tmp_path: Path, spawn: Any) -> None:
    from endpoint.scan.sensors.processes import iter_processes, read_details

    pid, _ = _in_namespace(tmp_path, spawn)
    assert root_of(pid) is None  # another mount namespace: not a root the host reaches by a path
    [record] = [r for r in iter_processes(LIB.credential_kind, pids=[pid], read_env=False)
                if isinstance(r, ProcessRecord)]
    assert record.cmdline == ["/usr/bin/python3", "/srv/agent/run.py"]
    error = read_details(record, LIB.credential_kind, projects=ProjectReader(interests_of(LIB), maps=False))
    # named as the container names them, read as the host reaches them
    assert record.project is not None and (record.project.root, record.project.entry) == ("/srv/agent", "run.py")
    assert record.project.imports == (("langgraph.graph", "app/graph.py"),)
    # app/tools.py links to /etc/shadow: out of the project, refused, and named as the container names it
    assert error is not None and (error.where, error.error) == (f"pid {pid} project /srv/agent", "symlink_escape")
    assert error.detail.startswith("/srv/agent/app/tools.py: ")
    assert record.container is None  # a namespace the test made: no runtime's cgroup names it
    # read at its paths as the host has them (what the scan did before), it is no project at all
    blind = ProjectReader(interests_of(LIB), maps=False, proc_roots=False).read(record)
    assert blind is None or blind.imports == ()


def test_links_in_a_containers_root_resolve_inside_it(tmp_path: Path, spawn: Any) -> None:
    pid, newroot = _in_namespace(tmp_path, spawn)
    walled = InRoot(pid)
    prefix = walled.prefix
    host_shadow = Path("/etc/shadow").read_bytes() if Path("/etc/shadow").exists() else b""
    for link in ("shadow-abs", "shadow-up"):
        text, owner = walled.read_text_owned(f"{prefix}/srv/agent/{link}", boundary=prefix, limit=4096)
        assert text == "root:FAKE-container-shadow:19000:0:99999:7:::\n" and owner == 0
        assert text.encode() != host_shadow
    # the project's boundary holds: a module linking to /etc/shadow (the container's) is out of the project
    with pytest.raises(safeio.ReadRefused) as refused:
        walled.read_text_owned(f"{prefix}/srv/agent/app/tools.py", boundary=f"{prefix}/srv/agent", limit=4096)
    assert refused.value.code == "symlink_escape"
    # /proc inside the container is its own: its pid 1's root link is the container's "/" again
    text, _ = walled.read_text_owned(f"{prefix}/proc/1/root/etc/shadow", boundary=prefix, limit=4096)
    assert "FAKE-container-shadow" in text
    assert sorted(walled.listing(f"{prefix}/srv/agent", 100)) == sorted(os.listdir(newroot / "srv" / "agent"))
    with pytest.raises(safeio.ReadRefused) as refused:
        walled.read_text_owned(f"{prefix}/srv/agent/app", boundary=prefix, limit=4096)
    assert refused.value.code == "not_regular"
    # a container process's reads never reach a host path, whatever path a resolver came up with
    from endpoint.scan.projects import Budget, Reads

    reads = Reads(Budget(), 0, in_root=walled)
    assert reads.text("/etc/hostname", "/etc") is None and reads.listing("/etc") == []
    assert [(code, where) for where, code, _ in reads.errors] == [("symlink_escape", "/etc/hostname")]
    # a loop of links ends with a reason, not a hang
    (newroot / "srv" / "agent" / "loop").symlink_to("/srv/agent/loop")
    with pytest.raises(safeio.ReadRefused) as refused:
        walled.read_text_owned(f"{prefix}/srv/agent/loop", boundary=prefix, limit=4096)
    assert refused.value.code == "symlink_loop"


def test_a_container_that_exits_mid_read_costs_one_clean_answer(tmp_path: Path, spawn: Any) -> None:
    pid, _ = _in_namespace(tmp_path, spawn)
    record = ProcessRecord(pid, 1, "python3", "/usr/bin/python3", ["/usr/bin/python3", "/srv/agent/run.py"], "root",
                           0, 0.0, cwd="/srv/agent")
    reader = ProjectReader(interests_of(LIB), maps=False)
    assert root_of(pid) is None
    walled = InRoot(pid)
    os.kill(pid, signal.SIGKILL)  # the container's pid 1: the whole namespace goes with it
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    with pytest.raises(safeio.ReadRefused) as refused:
        walled.read_text_owned(f"{walled.prefix}/srv/agent/run.py", boundary=walled.prefix, limit=4096)
    assert refused.value.code == "not_found"
    assert walled.listing(f"{walled.prefix}/srv/agent", 10) == []
    project = reader.read(record)  # gone: its paths are taken as they are, and nothing breaks
    assert project is None or project.imports == ()


def test_no_runtime_command_is_ever_run() -> None:
    source = Path(containers.__file__).read_text()
    assert "subprocess" not in source and "os.system" not in source and "Popen" not in source


def test_a_platforms_database_in_a_container_is_opened_through_its_root(tmp_path: Path, spawn: Any) -> None:
    """n8n's (and Flowise's, Langflow's) SQLite store in a container: its links resolve inside the container,
    and SQLite is handed the file opened there, not a path the kernel would resolve from the host's /."""
    import sqlite3

    from endpoint.scan.projects import Budget, Reads
    from endpoint.scan.projects.n8n import read_rows

    pid, newroot = _in_namespace(tmp_path, spawn)
    data = newroot / "data"
    data.mkdir()
    db = sqlite3.connect(data / "real.sqlite")
    db.execute("CREATE TABLE workflow_entity (name TEXT, active INTEGER, nodes TEXT)")
    db.execute("INSERT INTO workflow_entity VALUES ('Invoice triage', 1, '[]')")
    db.commit()
    db.close()
    folder = newroot / "home" / "node" / ".n8n"
    folder.mkdir(parents=True)
    # an absolute link: inside the container it is /home/node/.n8n/db.sqlite; from the host's / it is nothing
    (folder / "db.sqlite").symlink_to("/home/node/.n8n/real.sqlite")
    os.link(data / "real.sqlite", folder / "real.sqlite")
    (folder / "shadow.sqlite").symlink_to("/etc/shadow")  # out of the folder: refused
    (folder / "fifo.sqlite").parent.mkdir(exist_ok=True)
    os.mkfifo(folder / "fifo.sqlite")  # a FIFO: never opened (an open would block)
    walled = InRoot(pid)
    reads = Reads(Budget(), 0, in_root=walled)
    where = f"{walled.prefix}/home/node/.n8n"
    sql = "SELECT name, active FROM workflow_entity LIMIT ?"
    rows = read_rows(where, "db.sqlite", sql, (10,), reads, "n8n's database")
    assert rows == [("Invoice triage", 1)], reads.errors
    assert read_rows(where, "shadow.sqlite", sql, (10,), reads, "n8n's database") == []
    assert read_rows(where, "fifo.sqlite", sql, (10,), reads, "n8n's database") == []
    assert read_rows(where, "absent.sqlite", sql, (10,), reads, "n8n's database") == []
    assert [code for _, code, _ in reads.errors] == ["symlink_escape", "not_regular"]


def test_two_containers_of_one_image_are_two_agents_named_after_their_containers() -> None:
    from endpoint.scan.engine import Engine
    from endpoint.scan.evidence import Project

    project = Project("python", "/srv/agent", "app.worker", imports=(("langgraph.graph", "app/graph.py"),))

    def proc(pid: int, container: tuple[str, str, str, str] | None) -> ProcessRecord:
        return ProcessRecord(pid, 1, "python3", "/usr/bin/python3", ["python3", "-m", "app.worker"], "alice", 1000,
                             0.0, project=project, container=container)

    engine = Engine(LIB, device_id="dev", platform="linux")
    engine.add_processes([proc(10, ("docker", ID, "invoice-agent", "ghcr.io/acme/invoice-agent:1.4")),
                          proc(11, ("docker", "e" * 64, "", "ghcr.io/acme/invoice-agent:1.4")),
                          proc(12, None)])
    found = {s["name"]: s for s in engine.result("2026-01-01T00:00:00+00:00")}
    assert set(found) == {"app.worker in /srv/agent (container invoice-agent)",
                          f"app.worker in /srv/agent (container {'e' * 12})", "app.worker in /srv/agent"}
    named = found["app.worker in /srv/agent (container invoice-agent)"]
    assert named["type"] == "enterprise"
    assert [p["container"]["image"] for p in named["processes"]] == ["ghcr.io/acme/invoice-agent:1.4"]
    assert "container" not in found["app.worker in /srv/agent"]["processes"][0]


def test_a_containers_metadata_is_read_once_per_scan(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    for pid in (80, 81):
        (proc / str(pid)).mkdir(parents=True)
        (proc / str(pid) / "cgroup").write_text(f"0::/system.slice/docker-{ID}.scope\n")
    docker = tmp_path / "docker"
    config = _docker_config(docker, ID, b"not json")
    seen: dict[Any, Any] = {}
    errors: list[tuple[str, str]] = []
    first = container_of(80, 0, proc=str(proc), docker=str(docker), podman=str(tmp_path), errors=errors, seen=seen)
    config.write_text(DOCKER_CONFIG)  # not read again in this scan: its second process gets the same answer
    second = container_of(81, 0, proc=str(proc), docker=str(docker), podman=str(tmp_path), errors=errors, seen=seen)
    assert first == second == ("docker", ID, "", "")
    assert [code for code, _ in errors] == ["not_json"]  # one error for the container, not one per process
    assert container_of(81, 0, proc=str(proc), docker=str(docker), podman=str(tmp_path))[2] == "invoice-agent"


def test_a_rootless_store_is_believed_only_when_its_user_or_root_owns_it(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give the store to another user")
    store = tmp_path / "home" / ".local" / "share" / "containers" / "storage"
    _podman_store(store, [PODMAN_ENTRY])
    os.chown(store / "overlay-containers" / "containers.json", 1000, 1000)
    assert podman_metadata(ID, str(store), owner=1000) == ("crew-runner", "docker.io/library/python:3.12-slim")
    errors: list[tuple[str, str]] = []
    assert podman_metadata(ID, str(store), errors, owner=1001) is None  # another user's store: not this one's
    assert podman_metadata(ID, str(store), errors) is None  # the root store must be root's
    assert [code for code, _ in errors] == ["not_owner", "not_owner"]


def test_a_containers_paths_exist_or_not_as_the_container_has_them(tmp_path: Path, spawn: Any) -> None:
    """Whether a module, a manifest or a folder exists is asked through the container's root too: an absolute
    link in the container names the container's path, so the host's files never answer yes or no for it."""
    pid, newroot = _in_namespace(tmp_path, spawn)
    host_only = "/etc/hostname" if os.path.isfile("/etc/hostname") else "/etc/passwd"
    assert not (newroot / host_only.lstrip("/")).exists()  # the host has it, the container has not
    api = newroot / "srv" / "api"
    (api / "langgraph").mkdir(parents=True)
    (api / "langgraph" / "__init__.py").write_text("")  # vendored: its interpreter's path holds the framework
    (api / "main.py").symlink_to(host_only)  # fastapi looks for main.py first: in the container it is not there
    (api / "app.py").write_text("from langgraph.graph import StateGraph\napp = StateGraph(dict)\n")
    (api / "shared").symlink_to("/opt/shared")  # a folder only the container has, by an absolute link
    (newroot / "opt" / "shared").mkdir(parents=True)
    (newroot / "opt" / "shared" / "agent_tools.py").write_text("from openai import OpenAI\n")
    (api / "extra.py").write_text("import agent_tools\n")
    web = newroot / "srv" / "web"
    (web / "dist").mkdir(parents=True)
    (web / "package.json").write_text(json.dumps({"dependencies": {"@langchain/langgraph": "^0.2.0"}}))
    (web / "dist" / "package.json").symlink_to(host_only)  # not the project's manifest inside the container
    (web / "dist" / "index.js").write_text('import { StateGraph } from "@langchain/langgraph";\n')

    def project(cmdline: list[str], cwd: str, env: dict[str, str] | None = None) -> Any:
        exe = "/usr/bin/node" if cmdline[0] == "node" else "/usr/bin/python3"
        record = ProcessRecord(pid, 1, os.path.basename(exe), exe, cmdline, "root", 0, 0.0, env_values=env or {},
                               cwd=cwd)
        return ProjectReader(interests_of(LIB), maps=False).read(record)

    api_project = project(["/usr/bin/python3", "-m", "fastapi", "run"], "/srv/api")
    assert api_project is not None and api_project.imports == (("langgraph.graph", "app.py"),), api_project
    # a PYTHONPATH folder reached by a link that resolves only inside the container is on its search path
    extra = project(["/usr/bin/python3", "/srv/api/extra.py"], "/srv/api", {"PYTHONPATH": "/srv/api/shared"})
    assert extra is not None and ("openai", "shared/agent_tools.py") in extra.imports, extra
    web_project = project(["node", "/srv/web/dist/index.js"], "/srv/web")
    assert web_project is not None and web_project.root == "/srv/web", web_project
    assert web_project.imports == (("@langchain/langgraph", "dist/index.js"),)


def test_a_sighting_in_a_container_says_which_container_in_its_evidence() -> None:
    from endpoint.scan.engine import Engine
    from endpoint.scan.engine.registry import WEIGHTS, combine
    from endpoint.scan.evidence import Project

    project = Project("python", "/srv/agent", "app.worker", imports=(("langgraph.graph", "app/graph.py"),))

    def proc(pid: int, container: tuple[str, str, str, str] | None) -> ProcessRecord:
        return ProcessRecord(pid, 1, "python3", "/usr/bin/python3", ["python3", "-m", "app.worker"], "alice", 1000,
                             0.0, project=project, container=container)

    engine = Engine(LIB, device_id="dev", platform="linux")
    engine.add_processes([proc(10, ("docker", ID, "invoice-agent", "acme/agent:1.4")),
                          proc(11, ("podman", "e" * 64, "", "")), proc(12, None),
                          proc(13, ("docker", ID, "invoice-agent", "acme/agent:1.4"))])
    found = {s["name"]: s for s in engine.result("2026-01-01T00:00:00+00:00")}
    named = found["app.worker in /srv/agent (container invoice-agent)"]
    lines = [(e["rule"], e["detail"]) for e in named["evidence"]]
    # one line for the container however many of its processes run the agent
    assert lines.count(("process.container", "runs in Docker container invoice-agent, image acme/agent:1.4")) == 1
    plain = found["app.worker in /srv/agent"]
    assert all(e["rule"] != "process.container" for e in plain["evidence"])
    unnamed = found[f"app.worker in /srv/agent (container {'e' * 12})"]
    # the line weighs little: where an agent runs is no proof that it is one (one process each, as plain)
    assert WEIGHTS["process.container"] < 0.2
    assert unnamed["confidence"] == combine([*(WEIGHTS[e["rule"]] for e in plain["evidence"]),
                                             WEIGHTS["process.container"]])
    assert ("process.container", f"runs in Podman container {'e' * 12}") in [(e["rule"], e["detail"])
                                                                             for e in unnamed["evidence"]]
    TypeAdapter(checked(contract.Sighting)).validate_python(named)


def test_a_hostile_container_name_in_the_evidence_is_scrubbed_and_cut() -> None:
    from endpoint.scan.engine import Engine
    from endpoint.scan.evidence import Project

    project = Project("python", "/srv/agent", "app.worker", imports=(("langgraph.graph", "app/graph.py"),))
    secret = "sk-proj-FAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKE0000"
    record = ProcessRecord(10, 1, "python3", "/usr/bin/python3", ["python3", "-m", "app.worker"], "alice", 1000,
                           0.0, project=project, container=("docker", ID, f"agent-{secret}", "x" * 256))
    engine = Engine(LIB, device_id="dev", platform="linux")
    engine.add_processes([record])
    [sighting] = engine.result("2026-01-01T00:00:00+00:00")
    [line] = [e["detail"] for e in sighting["evidence"] if e["rule"] == "process.container"]
    assert secret not in line and line.startswith("runs in Docker container agent-")
    TypeAdapter(checked(contract.Sighting)).validate_python(sighting)


def test_difys_api_in_a_container_is_named_from_its_folder_inside_the_container(tmp_path: Path, spawn: Any) -> None:
    pid, newroot = _in_namespace(tmp_path, spawn)
    api = newroot / "app" / "api"
    api.mkdir(parents=True)
    (newroot / "app" / "shared").mkdir()
    (newroot / "app" / "shared" / "pyproject.toml").write_text('[project]\nname = "dify-api"\nversion = "1.9.1"\n')
    (api / "pyproject.toml").symlink_to("/app/shared/pyproject.toml")  # the container's file: out of the folder
    (api / "app.py").write_text("app = None\n")
    argv = ["/app/api/.venv/bin/python", "/app/api/.venv/bin/gunicorn", "--bind", "0.0.0.0:5001", "app:app"]
    record = ProcessRecord(pid, 1, "python", "/usr/bin/python3", argv, "root", 0, 0.0, cwd="/app/api")
    linked = ProjectReader(interests_of(LIB), maps=False).read(record)
    # a link out of the api folder is refused (inside the container as on a host): not named Dify
    assert linked is None or linked.platform != "dify"
    (api / "pyproject.toml").unlink()
    os.link(newroot / "app" / "shared" / "pyproject.toml", api / "pyproject.toml")
    record = ProcessRecord(pid, 1, "python", "/usr/bin/python3", argv, "root", 0, 0.0, cwd="/app/api")
    project = ProjectReader(interests_of(LIB), maps=False).read(record)
    assert project is not None and (project.platform, project.root, project.entry) == (
        "dify", "/app/api", "Dify api (app:app)")
    assert project.packages == (("pypi", "dify-api", "1.9.1", "pyproject.toml"),)


def test_an_n8n_export_in_a_container_is_read_through_its_root(tmp_path: Path, spawn: Any) -> None:
    """``--output=/data/flows`` names the container's folder: an option's path is taken inside its root as
    a bare path argument is."""
    pid, newroot = _in_namespace(tmp_path, spawn)
    flows = newroot / "data" / "flows"
    flows.mkdir(parents=True)
    nodes = [{"name": "Agent", "type": "@n8n/n8n-nodes-langchain.agent"},
             {"name": "Model", "type": "@n8n/n8n-nodes-langchain.lmChatOpenAi",
              "credentials": {"openAiApi": {"id": "1", "name": "OpenAI"}}}]
    (flows / "triage.json").write_text(json.dumps({"name": "Triage", "active": True, "nodes": nodes}))
    argv = ["node", "/usr/local/lib/node_modules/n8n/bin/n8n", "export:workflow", "--all", "--separate",
            "--output=/data/flows"]
    record = ProcessRecord(pid, 1, "node", "/usr/bin/node", argv, "root", 0, 0.0, cwd="/home/node")
    project = ProjectReader(interests_of(LIB), maps=False).read(record)
    assert project is not None and project.root == "/data/flows" and project.platform == "n8n"
    assert project.workflows == (("Triage", True, 1, ("openai",), ("openAiApi",)),)
