"""Reading hostile files as root: only regular files, no escapes, caps, and clear refusals."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from endpoint import safeio


def refused(path, boundary, **kw) -> str:
    with pytest.raises(safeio.ReadRefused) as info:
        safeio.read_text(str(path), boundary=str(boundary), **kw)
    return info.value.code


def test_reads_a_regular_utf8_file(tmp_path):
    (tmp_path / "a.json").write_text('{"ok": "é"}', encoding="utf-8")
    assert safeio.read_text(str(tmp_path / "a.json"), boundary=str(tmp_path)) == '{"ok": "é"}'


def test_strips_a_utf8_bom_and_reads_utf16_with_bom(tmp_path):
    (tmp_path / "bom.json").write_bytes(b"\xef\xbb\xbf{}")
    (tmp_path / "u16.json").write_bytes("{\"a\": 1}".encode("utf-16"))
    assert safeio.read_text(str(tmp_path / "bom.json"), boundary=str(tmp_path)) == "{}"
    assert safeio.read_text(str(tmp_path / "u16.json"), boundary=str(tmp_path)) == '{"a": 1}'


def test_refuses_a_file_over_the_cap(tmp_path):
    (tmp_path / "huge.json").write_bytes(b" " * (safeio.MAX_CONFIG_BYTES + 1))
    assert refused(tmp_path / "huge.json", tmp_path) == "too_large"


def test_refuses_binary_and_wrong_encoding(tmp_path):
    (tmp_path / "bin.json").write_bytes(b"\x7fELF\x00\x01\x02")
    (tmp_path / "latin1.json").write_bytes('{"name": "caf\xe9"}'.encode("latin-1"))
    assert refused(tmp_path / "bin.json", tmp_path) == "binary"
    assert refused(tmp_path / "latin1.json", tmp_path) == "encoding"


def test_never_opens_a_fifo_and_never_blocks(tmp_path):
    fifo = tmp_path / "mcp.json"
    os.mkfifo(fifo)
    done = threading.Event()

    def read() -> None:
        refused(fifo, tmp_path)
        done.set()

    worker = threading.Thread(target=read, daemon=True)
    worker.start()
    assert done.wait(5), "reading a FIFO blocked"


def test_refuses_a_device_file(tmp_path):
    link = tmp_path / "settings.json"
    link.symlink_to("/dev/zero")
    # the link leaves the home: refused before anything is opened
    assert refused(link, tmp_path) == "symlink_escape"
    # and with the device inside the boundary it is refused for what it is
    assert refused("/dev/zero", "/dev") == "not_regular"


def test_refuses_a_socket(tmp_path):
    path = tmp_path / "s.json"
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(path))
        assert refused(path, tmp_path) == "not_regular"
    finally:
        server.close()


def test_refuses_symlinks_out_of_the_home_and_follows_those_inside(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "secret").write_text("outside")
    (home / "real.json").write_text("{}")
    (home / "out.json").symlink_to(tmp_path / "secret")
    (home / "in.json").symlink_to(home / "real.json")
    assert refused(home / "out.json", home) == "symlink_escape"
    assert safeio.read_text(str(home / "in.json"), boundary=str(home)) == "{}"


def test_refuses_a_symlink_loop(tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    assert refused(tmp_path / "a", tmp_path) == "symlink_loop"


def test_reports_unreadable_files_when_not_root(tmp_path):
    path = tmp_path / "locked.json"
    path.write_text("{}")
    path.chmod(0)
    if os.geteuid() == 0:
        # root reads it anyway; what must hold is that the read works
        assert safeio.read_text(str(path), boundary=str(tmp_path)) == "{}"
    else:
        assert refused(path, tmp_path) == "permission_denied"


def test_a_refusal_never_quotes_the_file(tmp_path):
    (tmp_path / "k.json").write_bytes(b'{"key": "sk-FAKE\xff\xfe-not-utf8"}')
    with pytest.raises(safeio.ReadRefused) as info:
        safeio.read_text(str(tmp_path / "k.json"), boundary=str(tmp_path))
    assert "FAKE" not in str(info.value)
