"""Command-line behaviour that needs no codec: gsinfo, one-line errors, safe output."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from gscodec.cli.gsdec import main as gsdec
from gscodec.cli.gsenc import main as gsenc
from gscodec.cli.gsinfo import main as gsinfo
from gscodec.container import Chunk, write_container, write_file_atomic
from gscodec.container.format import MAJOR
from gscodec.errors import OutputError


@pytest.fixture
def gsi_file(tmp_path: Path) -> Path:
    p = tmp_path / "a.gsi"
    p.write_bytes(write_container("gsi", [Chunk(b"IHDR", b"abc")], metadata={"encoder": "t"}))
    return p


def test_gsinfo_table_and_json(gsi_file):
    r = CliRunner().invoke(gsinfo, [str(gsi_file)])
    assert r.exit_code == 0, r.output
    assert f"version {MAJOR['gsi']}.0" in r.output and "IHDR" in r.output and "GEND" in r.output
    r = CliRunner().invoke(gsinfo, ["--json", str(gsi_file)])
    info = json.loads(r.output)
    assert info["format"] == "gsi" and info["metadata"] == {"encoder": "t"}
    assert [c["type"] for c in info["chunks"]] == ["meta", "IHDR", "GEND"]
    assert all(c["crc_ok"] for c in info["chunks"])


def test_gsinfo_reports_bad_crc(gsi_file):
    data = bytearray(gsi_file.read_bytes())
    data[-12] ^= 1  # inside the IHDR payload
    gsi_file.write_bytes(bytes(data))
    r = CliRunner().invoke(gsinfo, [str(gsi_file)])
    assert r.exit_code == 1
    assert "CRC MISMATCH" in r.output


@pytest.mark.parametrize("tool,content", [
    ("gsinfo", b"not a file at all"),
    ("gsdec", b"\x89GSI\r\n"),
    ("gsenc", b"hello"),
])
def test_errors_are_one_line_without_traceback(tmp_path, tool, content):
    p = tmp_path / "bad.bin"
    p.write_bytes(content)
    r = subprocess.run([sys.executable, "-m", f"gscodec.cli.{tool}", str(p), "-o", str(tmp_path / "o")]
                       if tool != "gsinfo" else [sys.executable, "-m", f"gscodec.cli.{tool}", str(p)],
                       capture_output=True, text=True)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{tool}: error:") and str(p) in lines[0]
    assert "Traceback" not in r.stderr


def test_missing_file(tmp_path):
    r = CliRunner().invoke(gsdec, [str(tmp_path / "nope.gsi")])
    assert r.exit_code == 1 and "no such file" in r.output


def test_existing_output_is_not_overwritten(tmp_path, gsi_file):
    out = tmp_path / "out.png"
    out.write_bytes(b"precious")
    r = CliRunner().invoke(gsdec, [str(gsi_file), "-o", str(out)])
    assert r.exit_code == 1 and "exists" in r.output
    assert out.read_bytes() == b"precious"


def test_atomic_write_leaves_no_temporary(tmp_path):
    p = tmp_path / "x.bin"
    write_file_atomic(p, b"1")
    with pytest.raises(OutputError):
        write_file_atomic(p, b"2")
    write_file_atomic(p, b"3", force=True)
    assert p.read_bytes() == b"3"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["x.bin"]


@pytest.mark.skipif(not hasattr(os, "fchmod"), reason="POSIX file modes")
def test_atomic_write_gives_normal_permissions(tmp_path):
    # the output gets the mode open() would give (mkstemp's temporary files are 0600),
    # or keeps the mode of the file it replaces
    mask = os.umask(0o027)
    try:
        p = tmp_path / "new.bin"
        write_file_atomic(p, b"1")
        assert stat.S_IMODE(p.stat().st_mode) == 0o640
    finally:
        os.umask(mask)
    q = tmp_path / "old.bin"
    q.write_bytes(b"0")
    q.chmod(0o604)
    write_file_atomic(q, b"2", force=True)
    assert stat.S_IMODE(q.stat().st_mode) == 0o604 and q.read_bytes() == b"2"


def test_help_explains():
    for cmd in (gsenc, gsdec, gsinfo):
        r = CliRunner().invoke(cmd, ["--help"])
        assert r.exit_code == 0 and "Usage" in r.output
