"""Reading hostile files as root: only regular files, no escapes, caps, and clear refusals."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from endpoint.scan import safeio


@pytest.fixture(params=["alone", "resolver"])
def read(request):
    """``safeio.read_text`` on its own, and with the per-scan ``Resolver`` the file sensor passes."""
    resolver = safeio.Resolver() if request.param == "resolver" else None

    def read(path, boundary, **kw) -> str:
        return safeio.read_text(str(path), boundary=str(boundary), resolver=resolver, **kw)

    return read


def refused(read, path, boundary, **kw) -> str:
    with pytest.raises(safeio.ReadRefused) as info:
        read(path, boundary, **kw)
    return info.value.code


def test_reads_a_regular_utf8_file(tmp_path, read):
    (tmp_path / "a.json").write_text('{"ok": "é"}', encoding="utf-8")
    assert read(tmp_path / "a.json", tmp_path) == '{"ok": "é"}'


def test_strips_a_utf8_bom_and_reads_utf16_with_bom(tmp_path, read):
    (tmp_path / "bom.json").write_bytes(b"\xef\xbb\xbf{}")
    (tmp_path / "u16.json").write_bytes("{\"a\": 1}".encode("utf-16"))
    assert read(tmp_path / "bom.json", tmp_path) == "{}"
    assert read(tmp_path / "u16.json", tmp_path) == '{"a": 1}'


def test_refuses_a_file_over_the_cap(tmp_path, read):
    (tmp_path / "huge.json").write_bytes(b" " * (safeio.MAX_CONFIG_BYTES + 1))
    assert refused(read, tmp_path / "huge.json", tmp_path) == "too_large"


def test_refuses_binary_and_wrong_encoding(tmp_path, read):
    (tmp_path / "bin.json").write_bytes(b"\x7fELF\x00\x01\x02")
    (tmp_path / "latin1.json").write_bytes('{"name": "caf\xe9"}'.encode("latin-1"))
    assert refused(read, tmp_path / "bin.json", tmp_path) == "binary"
    assert refused(read, tmp_path / "latin1.json", tmp_path) == "encoding"


def test_never_opens_a_fifo_and_never_blocks(tmp_path, read):
    fifo = tmp_path / "mcp.json"
    os.mkfifo(fifo)
    done = threading.Event()

    def try_fifo() -> None:
        refused(read, fifo, tmp_path)
        done.set()

    worker = threading.Thread(target=try_fifo, daemon=True)
    worker.start()
    assert done.wait(5), "reading a FIFO blocked"


def test_refuses_a_device_file(tmp_path, read):
    link = tmp_path / "settings.json"
    link.symlink_to("/dev/zero")
    # the link leaves the home: refused before anything is opened
    assert refused(read, link, tmp_path) == "symlink_escape"
    # and with the device inside the boundary it is refused for what it is
    assert refused(read, "/dev/zero", "/dev") == "not_regular"


def test_refuses_a_socket(tmp_path, read):
    path = tmp_path / "s.json"
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(path))
        assert refused(read, path, tmp_path) == "not_regular"
    finally:
        server.close()


def test_refuses_symlinks_out_of_the_home_and_follows_those_inside(tmp_path, read):
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "secret").write_text("outside")
    (home / "real.json").write_text("{}")
    (home / "out.json").symlink_to(tmp_path / "secret")
    (home / "in.json").symlink_to(home / "real.json")
    assert refused(read, home / "out.json", home) == "symlink_escape"
    assert read(home / "in.json", home) == "{}"


def test_refuses_a_symlink_loop(tmp_path, read):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    assert refused(read, tmp_path / "a", tmp_path) == "symlink_loop"


def test_reports_unreadable_files_when_not_root(tmp_path, read):
    path = tmp_path / "locked.json"
    path.write_text("{}")
    path.chmod(0)
    if os.geteuid() == 0:
        # root reads it anyway; what must hold is that the read works
        assert read(path, tmp_path) == "{}"
    else:
        assert refused(read, path, tmp_path) == "permission_denied"


def test_a_refusal_never_quotes_the_file(tmp_path, read):
    (tmp_path / "k.json").write_bytes(b'{"key": "sk-FAKE\xff\xfe-not-utf8"}')
    with pytest.raises(safeio.ReadRefused) as info:
        read(tmp_path / "k.json", tmp_path)
    assert "FAKE" not in str(info.value)


def test_follows_a_folder_link_inside_the_home_and_refuses_one_leading_out(tmp_path, read):
    home = tmp_path / "home"
    (home / "dotfiles" / "cursor").mkdir(parents=True)
    (home / "dotfiles" / "cursor" / "mcp.json").write_text("{}")
    (home / ".cursor").symlink_to(home / "dotfiles" / "cursor")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "mcp.json").write_text("{}")
    (home / ".codeium").symlink_to(tmp_path / "elsewhere")
    assert read(home / ".cursor" / "mcp.json", home) == "{}"
    assert refused(read, home / ".codeium" / "mcp.json", home) == "symlink_escape"
    assert refused(read, home / ".cursor" / "missing.json", home) == "not_found"
    assert refused(read, home / ".cursor" / "mcp.json" / "x", home) == "unreadable"


def test_a_folder_swapped_for_a_link_after_it_was_resolved_is_refused(tmp_path):
    """The resolver remembers a folder's real path for the scan; a link put in its place later must not
    lead a read out of the home."""
    home = tmp_path / "home"
    (home / ".cursor").mkdir(parents=True)
    (home / ".cursor" / "mcp.json").write_text("{}")
    (home / ".cursor" / "settings.json").write_text("{}")
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "settings.json").write_text('{"stolen": true}')
    resolver = safeio.Resolver()
    assert safeio.read_text(str(home / ".cursor" / "mcp.json"), boundary=str(home), resolver=resolver) == "{}"
    (home / ".cursor").rename(home / ".cursor-old")
    (home / ".cursor").symlink_to(tmp_path / "secret")
    with pytest.raises(safeio.ReadRefused) as info:
        safeio.read_text(str(home / ".cursor" / "settings.json"), boundary=str(home), resolver=resolver)
    assert info.value.code in ("symlink_escape", "not_found")
