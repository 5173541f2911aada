"""Device identity and the org's fingerprint key on the endpoint: the per-install identity (root-only), the
hardware identity per OS (macOS from recorded ``ioreg`` output, Windows through the registry reader), and
``agentroster scan`` with and without the org's key (no fingerprint under a public constant)."""

from __future__ import annotations

import hmac
import json
import os
import stat
from hashlib import sha256
from pathlib import Path

from support import run_agentroster

from endpoint.scan import credentials
from endpoint.service import identity
from endpoint.service._managed_windows import REG_SZ, DictRegistry

# `ioreg -rd1 -c IOPlatformExpertDevice` on a MacBook (serial and UUID replaced by fake ones)
IOREG_OUTPUT = """+-o MacBookPro18,3  <class IOPlatformExpertDevice, id 0x100000223, registered, matched, active, busy 0 (1 ms), retain 37>
    {
      "IOPolledInterface" = "AppleARMWatchdogTimerHibernateHandler is not serializable"
      "compatible" = <"MacBookPro18,3","AppleARM">
      "IOPlatformUUID" = "0A1B2C3D-FAKE-4E5F-8A9B-0C1D2E3F4A5B"
      "IOPlatformSerialNumber" = "FAKESERIAL1"
      "manufacturer" = <"Apple Inc.">
      "model" = <"MacBookPro18,3">
    }
"""
FAKE_OPENAI = "sk-proj-FAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKE"


def test_the_install_identity_is_made_once_and_kept_root_only(tmp_path: Path) -> None:
    first = identity.install_id(tmp_path)
    assert first.startswith("install:") and len(first) == len("install:") + 32
    assert identity.install_id(tmp_path) == first
    mode = stat.S_IMODE((tmp_path / identity.INSTALL_ID_FILE).stat().st_mode)
    assert mode == 0o600
    (tmp_path / "other").mkdir()
    assert identity.install_id(tmp_path / "other") != first


def test_an_install_identity_others_could_read_or_that_is_a_link_is_not_taken(tmp_path: Path) -> None:
    path = tmp_path / identity.INSTALL_ID_FILE
    planted = "install:" + "a" * 32
    path.write_text(planted)
    path.chmod(0o644)  # readable by everyone: anyone could claim it
    assert identity.install_id(tmp_path) != planted
    elsewhere = tmp_path / "planted"
    elsewhere.write_text(planted)
    elsewhere.chmod(0o600)
    path.unlink()
    path.symlink_to(elsewhere)
    made = identity.install_id(tmp_path)
    assert made != planted and not path.is_symlink() and elsewhere.read_text() == planted


def test_the_hardware_identity_on_linux_is_the_machine_id(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "machine-id").write_text("0123456789ABCDEF0123456789abcdef\n")
    assert identity.hardware_id("linux", root=str(tmp_path)) == "machine-id:0123456789abcdef0123456789abcdef"
    (tmp_path / "etc" / "machine-id").write_text("not a machine id\n")
    assert identity.hardware_id("linux", root=str(tmp_path)) == ""


def test_the_hardware_identity_on_macos_is_the_platform_uuid_and_serial() -> None:
    asked: list[list[str]] = []

    def ioreg(argv: list[str]) -> str:
        asked.append(argv)
        return IOREG_OUTPUT

    found = identity.hardware_id("darwin", run=ioreg)
    assert found == "ioplatform:0A1B2C3D-FAKE-4E5F-8A9B-0C1D2E3F4A5B/FAKESERIAL1"
    assert asked == [["ioreg", "-rd1", "-c", "IOPlatformExpertDevice"]]
    assert identity.macos_hardware_id("+-o Root  <class IORegistryEntry>\n") == ""

    def failing(_argv: list[str]) -> str:
        raise OSError("no ioreg")

    assert identity.hardware_id("darwin", run=failing) == ""


def test_the_hardware_identity_on_windows_is_the_machine_guid() -> None:
    registry = DictRegistry({identity.CRYPTOGRAPHY_KEY: [("MachineGuid", "6F9619FF-FAKE-D011-B42D-00C04FC964FF", REG_SZ)]})
    assert identity.hardware_id("win32", registry=registry) == "machine-guid:6f9619ff-fake-d011-b42d-00c04fc964ff"
    assert identity.hardware_id("win32", registry=DictRegistry({})) == ""


def test_without_the_org_key_there_is_no_fingerprint(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(credentials.FINGERPRINT_KEY_ENV, raising=False)
    assert credentials.fingerprint_key(tmp_path) is None
    monkeypatch.setattr(credentials, "_data_dir", str(tmp_path))
    assert credentials.fingerprint(FAKE_OPENAI) is None
    assert not hasattr(credentials, "DEFAULT_FINGERPRINT_KEY")
    credentials.save_fingerprint_key(tmp_path, "FAKE-org-key-from-the-collector-0123456789")
    assert stat.S_IMODE(credentials.fingerprint_key_path(tmp_path).stat().st_mode) == 0o600
    expected = hmac.new(b"FAKE-org-key-from-the-collector-0123456789", FAKE_OPENAI.encode(), sha256).hexdigest()[:32]
    assert credentials.fingerprint(FAKE_OPENAI) == "hmac-sha256:" + expected
    credentials.fingerprint_key_path(tmp_path).chmod(0o644)  # a key others can read is no org key
    os.utime(credentials.fingerprint_key_path(tmp_path), ns=(1, 1))
    assert credentials.fingerprint(FAKE_OPENAI) is None


def machine_with_a_key(tmp_path: Path) -> Path:
    root = tmp_path / "machine"
    cursor = root / "home" / "alice" / ".cursor"
    cursor.mkdir(parents=True)
    (cursor / "mcp.json").write_text(json.dumps({"mcpServers": {"fetch": {
        "command": "uvx", "args": ["mcp-server-fetch"], "env": {"OPENAI_API_KEY": FAKE_OPENAI}}}}))
    return root


def scan_json(root: Path, **env: str) -> dict:
    base = {k: v for k, v in os.environ.items() if k not in (credentials.FINGERPRINT_KEY_ENV, "AGENTROSTER_DATA_DIR")}
    done = run_agentroster("scan", "--json", "--root", str(root), env={**base, **env})
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def credentials_in(doc: dict) -> list[dict]:
    return [c for s in doc["sightings"] for c in s["credentials"]]


def test_scan_without_the_org_key_leaves_fingerprints_out_and_says_so(tmp_path: Path) -> None:
    empty = tmp_path / "no-daemon-here"
    empty.mkdir()
    doc = scan_json(machine_with_a_key(tmp_path), AGENTROSTER_DATA_DIR=str(empty))
    found = credentials_in(doc)
    assert found and all(c["fingerprint"] is None and c["kind"] == "openai" and c["where"] for c in found)
    assert [e["where"] for e in doc["errors"] if e["error"] == "no_fingerprint_key"] == ["fingerprint_key"]
    assert FAKE_OPENAI not in json.dumps(doc)


def test_scan_as_root_uses_the_key_the_daemon_was_given(tmp_path: Path) -> None:
    data = tmp_path / "daemon-data"
    data.mkdir(mode=0o700)
    credentials.save_fingerprint_key(data, "FAKE-org-key-from-the-collector-0123456789")
    doc = scan_json(machine_with_a_key(tmp_path), AGENTROSTER_DATA_DIR=str(data))
    expected = hmac.new(b"FAKE-org-key-from-the-collector-0123456789", FAKE_OPENAI.encode(), sha256).hexdigest()[:32]
    assert {c["fingerprint"] for c in credentials_in(doc)} == {"hmac-sha256:" + expected}
    assert not any(e["error"] == "no_fingerprint_key" for e in doc["errors"])
