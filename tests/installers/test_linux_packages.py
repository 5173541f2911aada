"""The Linux packages, built from a small payload the test makes (an ``agentroster`` shell script), checked
with the real tools (dpkg-deb, lintian, rpm, systemd-analyze) and installed, upgraded, removed and purged
in a throwaway root made here: ``dpkg --root`` and ``rpm --root`` run the maintainer scripts chrooted
into it, as on a machine without a running systemd. Nothing is installed into the host.

One test needs the real frozen endpoint (the ``frozen_endpoint`` fixture of tests/installers/conftest.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from endpoint.service.managed import managed_source
from endpoint.service.settings import load_settings
from endpoint.service.settings_table import MANAGED_SETTINGS
from installers.linux import common, deb, rpm
from installers.linux.common import PackageError


def needs(tool: str, package: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(shutil.which(tool) is None,
                              reason=f"{tool} is not installed (apt install {package}; ./dev test installs it)")


needs_dpkg = needs("dpkg-deb", "dpkg")
needs_rpm = needs("rpmbuild", "rpm")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="installing into a throwaway root chroots: needs root")

HOST_DEB_ARCH, HOST_RPM_ARCH = {"x86_64": ("amd64", "x86_64"), "aarch64": ("arm64", "aarch64")}[os.uname().machine]
HOST_ELF_MACHINE, OTHER_ELF_MACHINE = (0x3E, 0xB7) if HOST_DEB_ARCH == "amd64" else (0xB7, 0x3E)

PAYLOAD_EXE = """#!/bin/sh
# a stand-in for the frozen endpoint: enough of its commands for the package scripts and the tests
case "$1" in
    scan) echo '{"schema": "agentroster.scan/1", "version": "@VERSION@", "sightings": [], "errors": []}' ;;
    status) echo "daemon:     not running"; exit 3 ;;
    *) echo "agentroster @VERSION@" ;;
esac
"""


def make_payload(folder: Path, version: str, *, elf_machine: int | None = None, glibc: str = "") -> Path:
    """A payload folder; ``elf_machine``/``glibc`` add a minimal ELF file that says so, as a frozen build's
    libraries would (only its header and its version strings are read)."""
    internal = folder / "_internal"
    internal.mkdir(parents=True)
    exe = folder / "agentroster"
    exe.write_text(PAYLOAD_EXE.replace("@VERSION@", version), encoding="utf-8")
    exe.chmod(0o755)
    with zipfile.ZipFile(internal / "base_library.zip", "w") as archive:
        archive.writestr("agentroster_version.py", f"VERSION = {version!r}\n")
    if elf_machine is not None:
        header = b"\x7fELF\x02\x01\x01" + bytes(9) + (3).to_bytes(2, "little") + elf_machine.to_bytes(2, "little")
        strings = b"\x00GLIBC_2.2.5\x00" + (f"GLIBC_{glibc}".encode() + b"\x00" if glibc else b"")
        (internal / "libstandin.so").write_bytes(header + bytes(44) + strings)
    return folder


@dataclass
class Built:
    payload_v1: Path
    deb_v1: Path
    deb_v2: Path
    rpm_v1: Path | None
    rpm_v2: Path | None


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed (apt install dpkg)")
    base = tmp_path_factory.mktemp("linux-packages")
    out = base / "dist"
    v1 = make_payload(base / "payload-1.0.0", "1.0.0")
    v2 = make_payload(base / "payload-1.0.1", "1.0.1")
    have_rpm = shutil.which("rpmbuild") is not None
    return Built(
        payload_v1=v1,
        deb_v1=deb.build(v1, out, "1.0.0")[0],
        deb_v2=deb.build(v2, out, "1.0.1")[0],
        rpm_v1=rpm.build(v1, out, "1.0.0")[0] if have_rpm else None,
        rpm_v2=rpm.build(v2, out, "1.0.1")[0] if have_rpm else None,
    )


def run(*argv: str | Path, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=env)
    if check and done.returncode != 0:
        raise AssertionError(f"{argv} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


# ---------------------------------------------------------------------------------------------- the .deb


@needs_dpkg
def test_deb_control_conffiles_and_contents(built: Built) -> None:
    assert built.deb_v1.name == f"agentroster_1.0.0_{HOST_DEB_ARCH}.deb"
    info = run("dpkg-deb", "--info", built.deb_v1).stdout
    fields = dict(re.findall(r"^ (\w[\w-]*): (.*)$", info, re.M))
    assert fields["Package"] == "agentroster"
    assert fields["Version"] == "1.0.0"
    assert fields["Architecture"] == HOST_DEB_ARCH
    assert "libpcap0.8" in fields["Depends"].split(", ")
    for script in ("preinst", "postinst", "prerm", "postrm"):
        assert re.search(rf"^ .* \* +{script} +#!/bin/sh$", info, re.M), script
    assert run("dpkg-deb", "--field", built.deb_v1, "Maintainer").stdout.strip() == common.MAINTAINER
    assert run("dpkg-deb", "--ctrl-tarfile", built.deb_v1).returncode == 0
    conffiles = run("sh", "-c", f"dpkg-deb --ctrl-tarfile {built.deb_v1} | tar -xOf - ./conffiles").stdout
    assert conffiles.split() == ["/etc/agentroster/endpoint.toml"]

    listing = {}
    for line in run("dpkg-deb", "--contents", built.deb_v1).stdout.splitlines():
        mode, owner, _size, _day, _time, path, *rest = line.split()
        listing[path.removeprefix(".")] = (mode, owner, rest)
    assert listing["/usr/lib/agentroster/agentroster"][:2] == ("-rwxr-xr-x", "root/root")
    assert listing["/usr/bin/agentroster"][0].startswith("l")
    assert listing["/usr/bin/agentroster"][2] == ["->", "../lib/agentroster/agentroster"]
    assert listing["/usr/lib/systemd/system/agentroster.service"][:2] == ("-rw-r--r--", "root/root")
    assert listing["/etc/agentroster/endpoint.toml"][:2] == ("-rw-------", "root/root")
    assert "/usr/lib/agentroster/_internal/base_library.zip" in listing
    # the state is the daemon's (systemd makes it), never a file of the package
    assert not any(path.startswith("/var/lib/agentroster") for path in listing)


def lintian_overridden(package: Path) -> set[str]:
    """Lintian's errors and warnings must all be overridden (with a reason, in the package); the tags it
    overrode."""
    done = run("lintian", "--tag-display-limit", "0", "--display-level", ">=warning", "--show-overrides",
               package, check=False)
    hints = [line for line in done.stdout.splitlines() if re.match(r"^[EWO]: ", line)]
    assert not [h for h in hints if h.startswith(("E:", "W:"))], done.stdout + done.stderr
    # (its exit code is 2 when it shows an overridden error: only what it says can be relied on)
    complaints = [line for line in done.stderr.splitlines() if "running with root privileges" not in line]
    assert complaints == [], done.stderr
    return {h.split()[2] for h in hints if h.startswith("O:")}


@needs_dpkg
@needs("lintian", "lintian")
def test_deb_passes_lintian_with_only_the_overrides_it_ships(built: Built) -> None:
    overridden = lintian_overridden(built.deb_v1)
    # every override still matches something
    shipped = deb.lintian_overrides(common.inspect_payload(built.payload_v1))
    assert overridden == {tag.split()[0] for tag in shipped}


# ---------------------------------------------------------------------------------------------- the .rpm


@needs_rpm
def test_rpm_info_files_config_and_requires(built: Built) -> None:
    assert built.rpm_v1 is not None
    assert built.rpm_v1.name == f"agentroster-1.0.0-1.{HOST_RPM_ARCH}.rpm"
    info = run("rpm", "-qpi", built.rpm_v1).stdout
    assert re.search(r"^Name\s+: agentroster$", info, re.M)
    assert re.search(r"^Version\s+: 1\.0\.0$", info, re.M)
    assert re.search(rf"^Architecture: {HOST_RPM_ARCH}$", info, re.M)
    assert re.search(r"^License\s+: Apache-2\.0$", info, re.M)
    files = run("rpm", "-qplv", built.rpm_v1).stdout.splitlines()
    by_path = {line.split()[8]: line.split() for line in files}
    assert by_path["/etc/agentroster/endpoint.toml"][0] == "-rw-------"
    assert by_path["/etc/agentroster/endpoint.toml"][2:4] == ["root", "root"]
    assert by_path["/usr/lib/agentroster/agentroster"][0] == "-rwxr-xr-x"
    assert by_path["/usr/bin/agentroster"][-2:] == ["->", "../lib/agentroster/agentroster"]
    assert "/usr/lib/systemd/system/agentroster.service" in by_path
    assert run("rpm", "-qpc", built.rpm_v1).stdout.split() == ["/etc/agentroster/endpoint.toml"]
    requires = [r.strip() for r in run("rpm", "-qpR", built.rpm_v1).stdout.splitlines()]
    # by soname, as rpm's generator writes them, and nothing generated from the bundled libraries
    assert [r for r in requires if ".so" in r] == ["libc.so.6()(64bit)", "libpcap.so.1()(64bit)"], requires
    assert re.search(r"^Packager\s+: agentroster maintainers", info, re.M)
    assert "- agentroster 1.0.0." in run("rpm", "-qp", "--changelog", built.rpm_v1).stdout
    scripts = run("rpm", "-qp", "--scripts", built.rpm_v1).stdout
    for section in ("preinstall", "postinstall", "preuninstall", "postuninstall"):
        assert f"{section} scriptlet (using /bin/sh)" in scripts


# ----------------------------------------------------------------------------------- the unit and config


def extracted(package: Path, where: Path) -> Path:
    run("dpkg-deb", "-x", package, where)
    return where


@needs_dpkg
@needs("systemd-analyze", "systemd")
def test_unit_passes_systemd_analyze_verify(built: Built, tmp_path: Path) -> None:
    tree = extracted(built.deb_v1, tmp_path / "tree")
    unit = (tree / common.UNIT_PATH).read_text(encoding="utf-8")
    assert "\nExecStart=/usr/bin/agentroster daemon\n" in unit
    # verify checks that ExecStart exists on this machine: the unit as shipped, with only that path
    # pointing at the extracted binary (the package's /usr/bin link points there too)
    checked = tmp_path / "agentroster.service"
    checked.write_text(unit.replace("ExecStart=/usr/bin/agentroster",
                                    f"ExecStart={tree / common.INSTALL_DIR / 'agentroster'}"), encoding="utf-8")
    done = run("systemd-analyze", "verify", checked, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr.strip() == "", done.stderr

    security = run("systemd-analyze", "security", "--offline=yes", f"--root={tree}", "agentroster.service",
                   check=False)
    exposure = re.search(r"Overall exposure level for agentroster\.service: ([\d.]+)", security.stdout)
    assert exposure is not None, security.stdout + security.stderr
    assert float(exposure[1]) <= 3.0, security.stdout  # 2.6 as shipped


def unit_settings(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def test_unit_runs_as_root_with_only_the_sensors_capabilities() -> None:
    unit = unit_settings((common.FILES / "agentroster.service").read_text(encoding="utf-8"))
    assert unit["Type"] == ["notify"]
    assert unit["NotifyAccess"] == ["main"]
    assert unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert int(unit["WatchdogSec"][0]) > 0
    assert unit["Restart"] == ["on-failure"]
    assert unit["StartLimitBurst"] and unit["StartLimitIntervalSec"]
    assert "User" not in unit and "DynamicUser" not in unit
    assert unit["CapabilityBoundingSet"] == ["CAP_DAC_READ_SEARCH CAP_SYS_PTRACE CAP_NET_RAW"]
    assert unit["StateDirectory"] == ["agentroster"] and unit["StateDirectoryMode"] == ["0700"]
    assert unit["RuntimeDirectory"] == ["agentroster"]
    assert unit["ProtectSystem"] == ["strict"] and unit["ProtectHome"] == ["read-only"]
    assert unit["PrivateTmp"] == ["yes"] and unit["NoNewPrivileges"] == ["yes"]
    # the daemon must see every process and capture on every interface
    assert "ProtectProc" not in unit and "PrivateNetwork" not in unit
    assert "AF_PACKET" in unit["RestrictAddressFamilies"][0].split()


def test_endpoint_toml_lists_every_managed_setting_and_loads_when_uncommented(tmp_path: Path) -> None:
    text = common.endpoint_toml()
    for doc in MANAGED_SETTINGS:
        assert f"# {doc.summary}\n" in text
        assert re.search(rf"^# {doc.name} = ", text, re.M), doc.name
    assert not [line for line in text.splitlines() if line and not line.startswith("#")], "something is set"

    # every line uncommented (but the secret, which belongs in its own file) is a managed config the
    # daemon takes, read the way it reads /etc/agentroster/endpoint.toml
    uncommented = "\n".join(line[2:] if re.match(r"# [a-z_]+ = ", line) and "enroll_secret =" not in line
                            else line for line in text.splitlines())
    config = tmp_path / "etc/agentroster/endpoint.toml"
    config.parent.mkdir(parents=True)
    config.write_text(uncommented, encoding="utf-8")
    config.chmod(0o600)
    for folder in (tmp_path, tmp_path / "etc", config.parent):
        folder.chmod(0o755)
    settings, origins = load_settings(env={}, managed=managed_source("linux", root=tmp_path), platform="linux")
    assert settings.collector_url == "https://collector.example.org:8443"
    assert str(settings.enroll_secret_file) == "/etc/agentroster/enroll-secret"
    assert settings.process_interval_s == 5
    assert settings.sensors == frozenset({"processes", "files", "network"})
    assert settings.spool_max_bytes == 52428800
    managed = {name for name, origin in origins.items() if origin.startswith("managed:")}
    assert managed == {doc.name for doc in MANAGED_SETTINGS} - {"enroll_secret"}
    assert not settings.warnings


@needs("shellcheck", "shellcheck")
@pytest.mark.parametrize("name", ["deb/preinst", "deb/postinst", "deb/prerm", "deb/postrm",
                                  "rpm/pre.sh", "rpm/post.sh", "rpm/preun.sh", "rpm/postun.sh"])
def test_package_scripts_pass_shellcheck_as_posix_sh(name: str, tmp_path: Path) -> None:
    info = common.inspect_payload(make_payload(tmp_path / "payload", "1.0.0", elf_machine=0x3E, glibc="2.31"))
    text = common.script(name, info)
    assert "@" not in text.replace("agentroster@", ""), "a fact left unfilled"
    script = tmp_path / name.replace("/", "-")
    # an rpm scriptlet has no #! line: rpm runs it with /bin/sh
    script.write_text(text if text.startswith("#!") else "#!/bin/sh\n" + text, encoding="utf-8")
    done = run("shellcheck", "--shell=sh", "--severity=style", script, check=False)
    assert done.returncode == 0, done.stdout


@needs_dpkg
@needs_rpm
def test_builds_are_repeatable_with_source_date_epoch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    payload = make_payload(tmp_path / "payload", "1.0.0")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1764892800")
    first = [*deb.build(payload, tmp_path / "one", "1.0.0"), *rpm.build(payload, tmp_path / "one", "1.0.0")]
    second = [*deb.build(payload, tmp_path / "two", "1.0.0"), *rpm.build(payload, tmp_path / "two", "1.0.0")]
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    # every timestamp is the epoch's (2025-12-05 00:00 UTC), not the build's
    assert run("rpm", "-qp", "--qf", "%{BUILDTIME}", first[1]).stdout == "1764892800"
    dates = {line.split()[3] for line in run("dpkg-deb", "--contents", first[0], env={"TZ": "UTC"}).stdout.splitlines()}
    assert dates == {"2025-12-05"}, dates
    changelog = run("sh", "-c", f"dpkg-deb --fsys-tarfile {first[0]} | tar -xOf - "
                    "./usr/share/doc/agentroster/changelog.gz | gzip -dc").stdout
    assert "Fri, 05 Dec 2025 00:00:00 +0000" in changelog


# What the unit keeps of root's capabilities, tried on each sensor's own code: the probe runs as root
# with the unit's bounding set (setpriv, as systemd's CapabilityBoundingSet= does), then without each one.
UNIT_CAPABILITIES = ("dac_read_search", "sys_ptrace", "net_raw")

CAPABILITY_PROBE = """
import json, sys
from endpoint.scan.sensors import _procs_linux
from endpoint.scan.sensors.capture import CaptureUnavailable, open_capture

pid = int(sys.argv[1])
found = {}
try:
    found["environ"] = _procs_linux.environ(pid).get("AGENTROSTER_PROBE_MARKER", "")
    found["cwd"] = _procs_linux.cwd(pid)
except PermissionError as exc:
    found["environ"] = found["cwd"] = "refused: " + str(exc.strerror)
try:
    open_capture("tcp port 443", None).close()
    found["capture"] = "open"
except CaptureUnavailable as exc:
    found["capture"] = str(exc)
print(json.dumps(found))
"""


def own_capabilities() -> int:
    status = Path("/proc/self/status").read_text(encoding="utf-8")
    match = re.search(r"^CapEff:\s+([0-9a-f]+)$", status, re.M)
    return int(match[1], 16) if match else 0


_CAP_BITS = {"dac_read_search": 2, "net_raw": 13, "sys_ptrace": 19}


@needs_root
@needs("setpriv", "util-linux")
@pytest.mark.skipif(any(not own_capabilities() >> bit & 1 for bit in _CAP_BITS.values()),
                    reason="this root lacks CAP_DAC_READ_SEARCH, CAP_SYS_PTRACE or CAP_NET_RAW (a container's "
                           "default set): run the tests as a root that has them")
def test_each_sensor_works_with_the_units_capabilities_and_needs_each_one(tmp_path: Path) -> None:
    unit = unit_settings((common.FILES / "agentroster.service").read_text(encoding="utf-8"))
    assert unit["CapabilityBoundingSet"][0].lower().split() == [f"cap_{c}" for c in UNIT_CAPABILITIES]
    # a user's home, 0700, with a Cursor MCP config in it
    home = tmp_path / "image/home/alice"
    (home / ".cursor").mkdir(parents=True)
    (home / ".cursor/mcp.json").write_text(
        '{"mcpServers": {"github": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"]}}}',
        encoding="utf-8")
    for path in (home, home / ".cursor", home / ".cursor/mcp.json"):
        os.chown(path, 4242, 4242)
        path.chmod(0o600 if path.is_file() else 0o700)
    # a process of that user, with something to find in its environment
    workdir = tmp_path / "work"
    workdir.mkdir(mode=0o755)
    process = subprocess.Popen(["setpriv", "--reuid=4242", "--regid=4242", "--clear-groups", "--",
                                "sleep", "60"], cwd=workdir,
                               env={"PATH": "/usr/bin:/bin", "AGENTROSTER_PROBE_MARKER": "FAKE-marker-0000"})
    probe = tmp_path / "probe.py"
    probe.write_text(CAPABILITY_PROBE, encoding="utf-8")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(common.__file__).parents[2])}

    def with_capabilities(*capabilities: str, argv: list[str]) -> str:
        bounding = ",".join(["-all", *(f"+{c}" for c in capabilities)])
        return run("setpriv", f"--bounding-set={bounding}", "--inh-caps=-all", "--", *argv, env=env).stdout

    def sensors(*capabilities: str) -> dict[str, str]:
        probed: dict[str, str] = json.loads(with_capabilities(
            *capabilities, argv=[sys.executable, str(probe), str(process.pid)]))
        scan = json.loads(with_capabilities(
            *capabilities, argv=[sys.executable, "-m", "endpoint.cli", "scan", "--root", str(tmp_path / "image"),
                                 "--json"]))
        probed["files"] = ",".join(sorted(s["name"] for s in scan["sightings"]))
        return probed

    try:
        everything = sensors(*UNIT_CAPABILITIES)
        assert everything == {"environ": "FAKE-marker-0000", "cwd": str(workdir), "capture": "open",
                              "files": "Cursor,github"}
        without = {c: sensors(*(other for other in UNIT_CAPABILITIES if other != c)) for c in UNIT_CAPABILITIES}
    finally:
        process.kill()
        process.wait()
    assert without["dac_read_search"]["files"] == ""
    # /proc/PID/environ is 0400 and its owner's: reading it takes both (the file mode, then ptrace's check)
    assert without["dac_read_search"]["environ"].startswith("refused: ")
    assert without["sys_ptrace"]["environ"].startswith("refused: ")
    assert without["sys_ptrace"]["files"] == "Cursor,github"
    assert without["net_raw"]["capture"].startswith("running as root but without CAP_NET_RAW")
    assert without["net_raw"] | {"capture": "open"} == everything


# ------------------------------------------------------------------------------------------ bad payloads


def test_bad_payloads_and_versions_are_refused_with_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match="does not exist"):
        deb.build(tmp_path / "missing", tmp_path / "out", "1.0.0")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PackageError, match="executable file named agentroster"):
        rpm.build(empty, tmp_path / "out", "1.0.0")
    good = make_payload(tmp_path / "good", "1.0.0")
    for version in ("v1.0", "1.0-2", "", "1.0 beta"):
        with pytest.raises(PackageError, match="must start with a digit"):
            deb.build(good, tmp_path / "out", version)
    escaping = make_payload(tmp_path / "escaping", "1.0.0")
    (escaping / "_internal" / "passwd").symlink_to("/etc/passwd")
    with pytest.raises(PackageError, match="outside the payload"):
        deb.build(escaping, tmp_path / "out", "1.0.0")
    mixed = make_payload(tmp_path / "mixed", "1.0.0", elf_machine=0x3E)
    shutil.copyfile(make_payload(tmp_path / "arm", "1.0.0", elf_machine=0xB7) / "_internal/libstandin.so",
                    mixed / "_internal/libother.so")
    with pytest.raises(PackageError, match="mixes architectures"):
        rpm.build(mixed, tmp_path / "out", "1.0.0")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_payload_architecture_and_glibc_come_from_its_elf_files(tmp_path: Path) -> None:
    arm = common.inspect_payload(make_payload(tmp_path / "arm", "1.0.0", elf_machine=0xB7, glibc="2.28"))
    assert (arm.deb_arch, arm.rpm_arch, arm.min_glibc) == ("arm64", "aarch64", "2.28")
    intel = common.inspect_payload(make_payload(tmp_path / "intel", "1.0.0", elf_machine=0x3E))
    assert (intel.deb_arch, intel.rpm_arch, intel.min_glibc) == ("amd64", "x86_64", "2.2")
    scripts = common.inspect_payload(make_payload(tmp_path / "scripts", "1.0.0"))
    assert (scripts.deb_arch, scripts.min_glibc) == (HOST_DEB_ARCH, "")


# ------------------------------------------------------------------------------- a throwaway root


def throwaway_root(root: Path) -> Path:
    """A root with a shell and the few commands the package scripts call (with their libraries), but no
    systemd and no dpkg: what a chroot or a container image looks like to the scripts."""
    for folder in ("usr/bin", "tmp", "var/tmp", "run", "dev", "etc"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "bin").symlink_to("usr/bin")
    (root / "tmp").chmod(0o1777)
    try:
        os.mknod(root / "dev/null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pass  # a container without CAP_MKNOD: the shell makes /dev/null a plain file, which does too
    for tool in ("sh", "rm", "mkdir", "uname", "getconf"):
        add_tool(root, tool)
    return root


def add_tool(root: Path, tool: str) -> None:
    """Copy a command of this machine, and the libraries it loads, into the root."""
    found = shutil.which(tool)
    assert found is not None, tool
    shutil.copy(os.path.realpath(found), root / "usr/bin" / tool)
    for library in re.findall(r"(/\S+) \(0x", run("ldd", os.path.realpath(found)).stdout):
        target = root / library.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            shutil.copy(os.path.realpath(library), target)


def dpkg_root(root: Path) -> Path:
    admin = root / "var/lib/dpkg"
    for folder in ("info", "updates", "triggers"):
        (admin / folder).mkdir(parents=True, exist_ok=True)
    for name in ("status", "available"):
        (admin / name).touch()
    return root


def dpkg(root: Path, *args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    # --force-depends: the throwaway root records no libc6 or libpcap0.8 package
    return run("dpkg", f"--root={root}", f"--log={root / 'dpkg.log'}", "--force-depends",
               "--force-confdef", "--force-confold", *args, check=check)


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    yield throwaway_root(tmp_path / "root")


def put_state(root: Path) -> None:
    """What a running daemon leaves in its data dir, and an admin's edit of the managed config."""
    data = root / "var/lib/agentroster"
    data.mkdir(parents=True, mode=0o700, exist_ok=True)
    (data / "state.sqlite3").write_bytes(b"SQLite format 3\x00 the daemon's state")
    (data / "device.key").write_text("FAKE-device-key-0000\n", encoding="utf-8")
    secret = root / "etc/agentroster/enroll-secret"
    secret.write_text("FAKE-enroll-secret-0000\n", encoding="utf-8")
    secret.chmod(0o600)
    config = root / common.CONFIG_PATH
    config.write_text(config.read_text(encoding="utf-8").replace(
        "# collector_url = 'https://collector.example.org:8443'", "collector_url = 'https://ar.test:8443'"),
        encoding="utf-8")


def installed_version(root: Path) -> str:
    return run(root / "usr/lib/agentroster/agentroster").stdout.strip()


@needs_dpkg
@needs_root
def test_deb_install_upgrade_remove_purge_in_a_throwaway_root(built: Built, root: Path) -> None:
    dpkg_root(root)
    done = dpkg(root, "-i", built.deb_v1)
    # no systemd here: the scripts skip it quietly
    assert "systemctl" not in done.stderr and "not found" not in done.stderr, done.stderr
    assert installed_version(root) == "agentroster 1.0.0"
    assert os.readlink(root / "usr/bin/agentroster") == "../lib/agentroster/agentroster"
    config = root / common.CONFIG_PATH
    assert stat.S_IMODE(config.stat().st_mode) == 0o600 and config.stat().st_uid == 0
    # the config as installed is one the daemon accepts (owner, mode, directories)
    settings, _ = load_settings(env={}, managed=managed_source("linux", root=root), platform="linux")
    assert settings.collector_url is None

    put_state(root)
    dpkg(root, "-i", built.deb_v2)
    assert installed_version(root) == "agentroster 1.0.1"
    assert (root / "var/lib/agentroster/device.key").read_text(encoding="utf-8") == "FAKE-device-key-0000\n"
    assert (root / "var/lib/agentroster/state.sqlite3").exists()
    assert (root / "etc/agentroster/enroll-secret").exists()
    assert "collector_url = 'https://ar.test:8443'" in config.read_text(encoding="utf-8")
    settings, origins = load_settings(env={}, managed=managed_source("linux", root=root), platform="linux")
    assert settings.collector_url == "https://ar.test:8443"

    dpkg(root, "--remove", "agentroster")
    assert not (root / "usr/lib/agentroster").exists() and not (root / "usr/bin/agentroster").is_symlink()
    assert (root / "var/lib/agentroster/device.key").exists(), "remove keeps the state"
    assert "collector_url = 'https://ar.test:8443'" in config.read_text(encoding="utf-8")

    dpkg(root, "--purge", "agentroster")
    assert not (root / "var/lib/agentroster").exists()
    assert not (root / "etc/agentroster").exists()
    assert "agentroster" not in (root / "var/lib/dpkg/status").read_text(encoding="utf-8")


@needs_dpkg
@needs_root
def test_deb_reinstalled_after_remove_keeps_the_state(built: Built, root: Path) -> None:
    dpkg_root(root)
    dpkg(root, "-i", built.deb_v1)
    put_state(root)
    dpkg(root, "--remove", "agentroster")
    assert (root / "var/lib/agentroster/.package-removed").exists()
    dpkg(root, "-i", built.deb_v2)
    assert installed_version(root) == "agentroster 1.0.1"
    assert (root / "var/lib/agentroster/device.key").exists()
    # the mark that makes configure enable the unit again is consumed
    assert not (root / "var/lib/agentroster/.package-removed").exists()


@needs_dpkg
@needs_root
@needs("systemctl", "systemd")
def test_deb_enables_the_unit_where_systemctl_is_there_but_systemd_is_not_running(built: Built, root: Path) -> None:
    # an image being built: systemctl works offline (it makes the symlinks) and nothing is started
    add_tool(root, "systemctl")
    dpkg_root(root)
    wanted = root / "etc/systemd/system/multi-user.target.wants/agentroster.service"
    done = dpkg(root, "-i", built.deb_v1)
    assert not re.search(r"^agentroster:", done.stderr, re.M), done.stderr
    assert os.readlink(wanted) == "/usr/lib/systemd/system/agentroster.service"

    # an admin's "disabled" survives an upgrade
    run("chroot", root, "systemctl", "disable", "agentroster.service")
    assert not wanted.is_symlink()
    dpkg(root, "-i", built.deb_v2)
    assert not wanted.is_symlink()

    run("chroot", root, "systemctl", "enable", "agentroster.service")
    dpkg(root, "--remove", "agentroster")
    assert not wanted.is_symlink(), "remove disables the unit"
    dpkg(root, "-i", built.deb_v2)
    assert wanted.is_symlink(), "installed again after a remove: enabled again"


# systemd cannot run as init here, so where the scripts' behaviour under a running systemd is checked,
# systemctl is this stand-in: it records each call and keeps "active" in a file.
SYSTEMCTL_STAND_IN = """#!/bin/sh
echo "$*" >> /systemctl.log
[ "$1" = --no-block ] && shift
case "$1" in
    is-active) [ -e /run/stand-in-active ] ;;
    start) : > /run/stand-in-active ;;
    stop) rm -f /run/stand-in-active ;;
esac
"""


def running_systemd(root: Path) -> Path:
    (root / "run/systemd/system").mkdir(parents=True)
    stand_in = root / "usr/bin/systemctl"
    stand_in.write_text(SYSTEMCTL_STAND_IN, encoding="utf-8")
    stand_in.chmod(0o755)
    return root


def systemctl_calls(root: Path) -> list[str]:
    log = root / "systemctl.log"
    calls = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return calls


def active(root: Path) -> bool:
    return (root / "run/stand-in-active").exists()


UNIT = "agentroster.service"


@needs_dpkg
@needs_root
def test_deb_scripts_drive_a_running_systemd(built: Built, root: Path) -> None:
    dpkg_root(running_systemd(root))
    dpkg(root, "-i", built.deb_v1)
    assert systemctl_calls(root) == [f"enable {UNIT}", "daemon-reload", f"--no-block start {UNIT}"]
    assert active(root)

    # an upgrade stops the daemon before its files change and starts it after
    dpkg(root, "-i", built.deb_v2)
    assert systemctl_calls(root) == [f"is-active --quiet {UNIT}", f"stop {UNIT}", "daemon-reload", f"--no-block start {UNIT}"]
    assert active(root) and not (root / "run/agentroster-package-restart").exists()

    # one the admin stopped stays stopped
    run("chroot", root, "systemctl", "stop", UNIT)
    systemctl_calls(root)
    dpkg(root, "-i", built.deb_v2)
    assert systemctl_calls(root) == [f"is-active --quiet {UNIT}", "daemon-reload"]
    assert not active(root)

    run("chroot", root, "systemctl", "start", UNIT)
    systemctl_calls(root)
    dpkg(root, "--remove", "agentroster")
    assert systemctl_calls(root) == [f"stop {UNIT}", f"disable {UNIT}", "daemon-reload"]
    dpkg(root, "-i", built.deb_v2)
    assert systemctl_calls(root) == [f"enable {UNIT}", "daemon-reload", f"--no-block start {UNIT}"]
    dpkg(root, "--purge", "agentroster")
    assert systemctl_calls(root) == [f"stop {UNIT}", f"disable {UNIT}", "daemon-reload", "daemon-reload"]


@needs_rpm
@needs_root
def test_rpm_scripts_drive_a_running_systemd(built: Built, root: Path) -> None:
    assert built.rpm_v1 is not None and built.rpm_v2 is not None
    rpm_root(running_systemd(root))
    rpm_cmd(root, "-i", built.rpm_v1)
    assert systemctl_calls(root) == [f"enable {UNIT}", "daemon-reload", f"--no-block start {UNIT}"]
    rpm_cmd(root, "-U", built.rpm_v2)
    assert systemctl_calls(root) == [f"is-active --quiet {UNIT}", f"stop {UNIT}", "daemon-reload", f"--no-block start {UNIT}"]
    assert active(root)
    rpm_cmd(root, "-e", "agentroster")
    assert systemctl_calls(root) == [f"stop {UNIT}", f"disable {UNIT}", "daemon-reload"]
    assert not active(root)


def rpm_root(root: Path) -> Path:
    run("rpm", "--root", root, "--initdb")
    return root


def rpm_cmd(root: Path, *args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    # --nodeps: the throwaway root has no glibc or libpcap package in its rpm database
    return run("rpm", "--root", root, "--nodeps", *args, check=check)


@needs_rpm
@needs_root
def test_rpm_install_upgrade_erase_in_a_throwaway_root(built: Built, root: Path) -> None:
    assert built.rpm_v1 is not None and built.rpm_v2 is not None
    rpm_root(root)
    done = rpm_cmd(root, "-i", built.rpm_v1)
    # Debian's rpm warns that alien is the way to install rpms on Debian; nothing else is said
    said = [line for line in done.stderr.splitlines()
            if not line.startswith(("rpm: RPM should not be used directly", "rpm: However assuming"))]
    assert said == [], done.stderr
    assert installed_version(root) == "agentroster 1.0.0"
    config = root / common.CONFIG_PATH
    assert stat.S_IMODE(config.stat().st_mode) == 0o600

    put_state(root)
    rpm_cmd(root, "-U", built.rpm_v2)
    assert installed_version(root) == "agentroster 1.0.1"
    assert (root / "var/lib/agentroster/device.key").exists()
    assert "collector_url = 'https://ar.test:8443'" in config.read_text(encoding="utf-8")
    assert run("rpm", "--root", root, "-q", "agentroster").stdout.strip() == f"agentroster-1.0.1-1.{HOST_RPM_ARCH}"

    # rpm has no purge: an erase keeps the state and the enroll secret, and the changed config as .rpmsave
    rpm_cmd(root, "-e", "agentroster")
    assert not (root / "usr/lib/agentroster").exists()
    assert (root / "var/lib/agentroster/device.key").exists()
    assert (root / "etc/agentroster/enroll-secret").exists()
    assert "https://ar.test:8443" in (root / "etc/agentroster/endpoint.toml.rpmsave").read_text(encoding="utf-8")


@needs_root
@pytest.mark.parametrize("kind", ["deb", "rpm"])
def test_a_config_written_before_the_package_is_kept(kind: str, built: Built, root: Path) -> None:
    # config management's order: the settings and the secret first, then the package
    if kind == "rpm" and built.rpm_v1 is None:
        pytest.skip("rpmbuild is not installed (apt install rpm; ./dev test installs it)")
    config = root / common.CONFIG_PATH
    config.parent.mkdir(mode=0o755)
    config.write_text("collector_url = 'https://mine.test'\n", encoding="utf-8")
    config.chmod(0o600)
    if kind == "deb":
        dpkg(dpkg_root(root), "-i", built.deb_v1)  # --force-confold, as Ansible's apt module passes
        packaged = config.with_name("endpoint.toml.dpkg-dist")
    else:
        assert built.rpm_v1 is not None
        rpm_cmd(rpm_root(root), "-i", built.rpm_v1)
        packaged = config.with_name("endpoint.toml.rpmnew")
    assert config.read_text(encoding="utf-8") == "collector_url = 'https://mine.test'\n"
    assert packaged.read_text(encoding="utf-8") == common.endpoint_toml()
    settings, _ = load_settings(env={}, managed=managed_source("linux", root=root), platform="linux")
    assert settings.collector_url == "https://mine.test"


@needs_dpkg
@needs_root
def test_packages_refuse_another_architecture_and_an_older_glibc(tmp_path: Path, root: Path) -> None:
    foreign = make_payload(tmp_path / "foreign", "1.0.0", elf_machine=OTHER_ELF_MACHINE)
    needs_new_glibc = make_payload(tmp_path / "new-glibc", "1.0.0", elf_machine=HOST_ELF_MACHINE, glibc="2.999")
    out = tmp_path / "dist"
    dpkg_root(root)
    # dpkg itself refuses the architecture; forced past that, the package's own check still refuses
    package = deb.build(foreign, out, "1.0.0")[0]
    done = dpkg(root, "-i", package, check=False)
    assert done.returncode != 0 and "does not match system" in done.stderr, done.stderr
    done = dpkg(root, "--force-architecture", "-i", package, check=False)
    assert done.returncode != 0
    assert f"agentroster: this package is for {'aarch64' if OTHER_ELF_MACHINE == 0xB7 else 'x86_64'} machines and this one " \
           f"is {os.uname().machine}; install the agentroster package built for {os.uname().machine}" in done.stderr
    assert not (root / "usr/lib/agentroster").exists()

    package = deb.build(needs_new_glibc, out, "1.0.1")[0]
    assert "libc6 (>= 2.999)" in run("dpkg-deb", "--field", package, "Depends").stdout
    done = dpkg(root, "-i", package, check=False)
    assert done.returncode != 0
    assert re.search(r"agentroster: this package needs glibc 2\.999 or newer and this system has glibc 2\.\d+; "
                     r"upgrade the OS", done.stderr), done.stderr
    assert not (root / "usr/lib/agentroster").exists()

    if shutil.which("rpmbuild") is not None:
        assert "libc.so.6(GLIBC_2.999)(64bit)" in run("rpm", "-qpR", rpm.build(needs_new_glibc, out, "1.0.1")[0]).stdout
        rpm_root(root)
        done = rpm_cmd(root, "--ignorearch", "-i", rpm.build(foreign, out, "1.0.0")[0], check=False)
        assert done.returncode != 0 and "agentroster: this package is for" in done.stderr, done.stderr
        done = rpm_cmd(root, "-i", rpm.build(needs_new_glibc, out, "1.0.1")[0], check=False)
        assert done.returncode != 0 and "needs glibc 2.999 or newer" in done.stderr, done.stderr
        assert not (root / "usr/lib/agentroster").exists()


@needs_dpkg
@needs_root
def test_a_refused_upgrade_leaves_the_installed_version_in_place(built: Built, tmp_path: Path, root: Path) -> None:
    dpkg_root(root)
    dpkg(root, "-i", built.deb_v1)
    put_state(root)
    newer = deb.build(make_payload(tmp_path / "new-glibc", "1.0.1", elf_machine=HOST_ELF_MACHINE, glibc="2.999"),
                      tmp_path / "dist", "1.0.1")[0]
    done = dpkg(root, "-i", newer, check=False)
    assert done.returncode != 0 and "needs glibc 2.999 or newer" in done.stderr, done.stderr
    status = run("dpkg-query", f"--admindir={root / 'var/lib/dpkg'}", "-W", "-f", "${Status} ${Version}",
                 "agentroster").stdout
    assert status == "install ok installed 1.0.0"
    assert installed_version(root) == "agentroster 1.0.0"
    assert (root / "var/lib/agentroster/device.key").exists()


# ----------------------------------------------------------------------------------------- the companion

COMPANION_EXE = """#!/bin/sh
# a stand-in for the frozen companion
echo "agentroster-companion 1.0.0"
"""


def make_companion(folder: Path) -> Path:
    """A companion folder as the freeze makes it: its executable at the top and its own _internal/."""
    (folder / "_internal").mkdir(parents=True)
    with zipfile.ZipFile(folder / "_internal" / "base_library.zip", "w") as archive:
        archive.writestr("companion_version.py", "VERSION = '1.0.0'\n")
    exe = folder / common.COMPANION_NAME
    exe.write_text(COMPANION_EXE, encoding="utf-8")
    exe.chmod(0o755)
    return folder


@dataclass
class WithCompanion:
    info: common.Payload
    deb: Path
    rpm: Path | None


@pytest.fixture(scope="module")
def with_companion(tmp_path_factory: pytest.TempPathFactory) -> WithCompanion:
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed (apt install dpkg)")
    base = tmp_path_factory.mktemp("with-companion")
    payload = make_payload(base / "payload", "1.0.0")
    companion = make_companion(base / "companion")
    have_rpm = shutil.which("rpmbuild") is not None
    return WithCompanion(common.inspect_payload(payload, companion),
                         deb.build(payload, base / "dist", "1.0.0", companion=companion)[0],
                         rpm.build(payload, base / "dist", "1.0.0", companion=companion)[0] if have_rpm else None)


def check_autostart_entry(path: Path) -> None:
    """The XDG autostart entry: valid, for every desktop (no OnlyShowIn), starting the companion."""
    if shutil.which("desktop-file-validate") is not None:
        done = run("desktop-file-validate", path, check=False)
        assert done.returncode == 0 and done.stdout.strip() == "", done.stdout + done.stderr
    entry = dict(line.split("=", 1) for line in path.read_text(encoding="utf-8").splitlines() if "=" in line)
    assert "OnlyShowIn" not in entry and "NotShowIn" not in entry and "Hidden" not in entry
    assert entry["Exec"] == entry["TryExec"] == common.COMPANION_NAME
    assert entry["X-GNOME-Autostart-enabled"] == "true"


@needs_dpkg
def test_deb_ships_the_companion_and_its_autostart_entry(with_companion: WithCompanion, tmp_path: Path) -> None:
    listing = {}
    for line in run("dpkg-deb", "--contents", with_companion.deb).stdout.splitlines():
        mode, owner, _size, _day, _time, path, *rest = line.split()
        listing[path.removeprefix(".")] = (mode, owner, rest)
    assert listing["/usr/lib/agentroster/companion/agentroster-companion"][:2] == ("-rwxr-xr-x", "root/root")
    assert "/usr/lib/agentroster/companion/_internal/base_library.zip" in listing
    assert listing["/usr/bin/agentroster-companion"][2] == ["->", "../lib/agentroster/companion/agentroster-companion"]
    assert listing["/etc/xdg/autostart/agentroster-companion.desktop"][:2] == ("-rw-r--r--", "root/root")
    # the endpoint's own files are where they were
    assert listing["/usr/lib/agentroster/agentroster"][:2] == ("-rwxr-xr-x", "root/root")
    conffiles = run("sh", "-c", f"dpkg-deb --ctrl-tarfile {with_companion.deb} | tar -xOf - ./conffiles").stdout
    assert conffiles.split() == ["/etc/agentroster/endpoint.toml", "/etc/xdg/autostart/agentroster-companion.desktop"]
    tree = extracted(with_companion.deb, tmp_path / "tree")
    check_autostart_entry(tree / common.AUTOSTART_PATH)
    assert run(tree / "usr/bin/agentroster-companion").stdout == "agentroster-companion 1.0.0\n"
    if shutil.which("lintian") is not None:
        overridden = lintian_overridden(with_companion.deb)
        assert overridden == {tag.split()[0] for tag in deb.lintian_overrides(with_companion.info)}


@needs_rpm
def test_rpm_ships_the_companion_and_keeps_an_edited_autostart_entry(with_companion: WithCompanion) -> None:
    assert with_companion.rpm is not None
    files = {line.split()[8]: line.split() for line in run("rpm", "-qplv", with_companion.rpm).stdout.splitlines()}
    assert files["/usr/lib/agentroster/companion/agentroster-companion"][0] == "-rwxr-xr-x"
    assert files["/usr/bin/agentroster-companion"][-2:] == ["->", "../lib/agentroster/companion/agentroster-companion"]
    assert files["/etc/xdg/autostart/agentroster-companion.desktop"][0] == "-rw-r--r--"
    assert sorted(run("rpm", "-qpc", with_companion.rpm).stdout.split()) == [
        "/etc/agentroster/endpoint.toml", "/etc/xdg/autostart/agentroster-companion.desktop"]
    # %config(noreplace): an admin's Hidden=true survives an upgrade
    flags = run("rpm", "-qp", "--qf", "[%{FILEFLAGS:fflags} %{FILENAMES}\\n]", with_companion.rpm).stdout
    assert re.search(r"^cn /etc/xdg/autostart/agentroster-companion\.desktop$", flags, re.M), flags


def system_library(soname: str) -> Path | None:
    """A shared library of this machine, by soname (ldconfig's cache), or None."""
    done = run("ldconfig", "-p", check=False)
    for line in done.stdout.splitlines():
        name, _, rest = line.strip().partition(" ")
        if name == soname and ("x86-64" in rest or "AArch64" in rest) and "=> " in rest:
            path = Path(rest.rsplit("=> ", 1)[1].strip())
            if path.is_file():
                return path
    return None


@needs_rpm
def test_packages_recommend_the_desktop_libraries_the_companion_takes_from_the_system(tmp_path: Path) -> None:
    # a real library of this machine in the companion's folder, as Qt's own would be: it needs
    # libglib-2.0.so.0 (a desktop's), and glibc
    library = system_library("libgthread-2.0.so.0")
    if library is None:
        pytest.skip("libgthread-2.0.so.0 is not installed (apt install libglib2.0-0; ./dev test installs it)")
    companion = make_companion(tmp_path / "companion")
    shutil.copyfile(library, companion / "_internal" / "libgthread-2.0.so.0")
    assert common.desktop_libraries(companion) == ["libglib-2.0.so.0"]
    payload = make_payload(tmp_path / "payload", "1.0.0")
    package = rpm.build(payload, tmp_path / "dist", "1.0.0", companion=companion)[0]
    assert run("rpm", "-qp", "--recommends", package).stdout.split() == ["libglib-2.0.so.0()(64bit)"]
    debian = deb.build(payload, tmp_path / "dist", "1.0.0", companion=companion, compress=False)[0]
    assert run("dpkg-deb", "--field", debian, "Recommends").stdout == "libglib2.0-0\n"
    # without the companion, nothing is recommended
    assert run("rpm", "-qp", "--recommends", rpm.build(payload, tmp_path / "plain", "1.0.0")[0]).stdout == ""


def test_a_companion_library_the_desktop_is_not_known_to_provide_stops_the_build(tmp_path: Path) -> None:
    # a real ELF executable of this machine (ls: libselinux, which no desktop list names) in a companion
    companion = make_companion(tmp_path / "companion")
    ls = Path(shutil.which("ls") or "/bin/ls").resolve()
    needed = common.elf_needed(ls.read_bytes())
    assert "libc.so.6" in needed
    shutil.copyfile(ls, companion / "_internal" / "ls")
    unknown = [n for n in needed if n not in common.DESKTOP_LIBRARIES and not n.startswith(("libc.", "ld-linux"))]
    if not unknown:
        pytest.skip(f"{ls} needs only glibc here ({needed}): nothing unknown to refuse")
    with pytest.raises(PackageError, match=f"needs {re.escape(unknown[0])}.*add it to DESKTOP_LIBRARIES"):
        common.desktop_libraries(companion)
    assert common.elf_needed(b"\x7fELF\x02\x01" + bytes(20)) == []  # truncated: no names, no crash


def test_a_companion_folder_without_its_executable_is_refused(tmp_path: Path) -> None:
    payload = make_payload(tmp_path / "payload", "1.0.0")
    (tmp_path / "companion").mkdir()
    with pytest.raises(PackageError, match="not a frozen companion folder"):
        common.inspect_payload(payload, tmp_path / "companion")


# ------------------------------------------------------------------------------- the real frozen build


@needs_dpkg
def test_frozen_endpoint_from_the_deb_scans_with_no_python_on_the_path(
        frozen_endpoint: Path, frozen_companion: Path, tmp_path: Path) -> None:
    # the real .deb, as ./dev package deb builds it: the endpoint and the companion, each frozen here; packed
    # with gzip -1 (xz takes a minute of CI over the two folders, and what is checked is what is in it)
    package = deb.build(frozen_endpoint, tmp_path / "dist", "1.0.0", companion=frozen_companion, compress=False)[0]
    depends = run("dpkg-deb", "--field", package, "Depends").stdout
    assert re.fullmatch(r"libc6 \(>= 2\.\d+\), libpcap0\.8\n", depends), depends
    # the desktop libraries the companion's Qt takes from the system, recommended (a server needs none)
    recommends = run("dpkg-deb", "--field", package, "Recommends").stdout.strip().split(", ")
    assert {"libxcb1", "libxcb-icccm4", "libxcb-keysyms1", "libgl1", "libdbus-1-3"} <= set(recommends), recommends
    if shutil.which("lintian") is not None:
        # the bundled Python and libraries: each tag lintian has about them is overridden with a reason
        assert "embedded-library" in lintian_overridden(package)
    tree = extracted(package, tmp_path / "tree")
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {"PATH": str(empty), "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    assert shutil.which("python3", path=env["PATH"]) is None
    exe = tree / common.INSTALL_DIR / "agentroster"
    done = run(exe, "scan", "--json", env=env)
    document = json.loads(done.stdout)
    assert document["schema"] == "agentroster.scan/1"
    assert isinstance(document["sightings"], list)
    # the companion from the same package starts (offscreen) and exits, with no Python either
    check_autostart_entry(tree / common.AUTOSTART_PATH)
    done = run(tree / common.COMPANION_DIR / common.COMPANION_NAME, "--self-check", env=env)
    assert "self-check: ok" in done.stdout, done.stdout + done.stderr
