"""The conformance suite passes with gscodec's decoder and covers every entropy-model kind."""
from __future__ import annotations

import collections
import json
from pathlib import Path

import pytest

from gscodec.conformance import OwnDecoder, run_manifest
from gscodec.entropy import tables

MANIFEST = Path(__file__).resolve().parents[1] / "conformance" / "manifest.json"


def test_manifest_passes_with_own_decoder():
    lines: list[str] = []
    results = run_manifest(MANIFEST, OwnDecoder(), log=lines.append)
    assert results and all(r.ok for r in results), [ln for ln in lines if ln.startswith("FAIL")]


def test_command_line_decoder_passes(tmp_path):
    from gscodec.conformance import CommandDecoder

    dec = CommandDecoder("python -m gscodec.cli.gsdec {in} -o {out} -f -q --refine-steps 0")
    results = run_manifest(MANIFEST, dec, select="deg1", log=lambda s: None, renders=False)
    assert results and all(r.ok for r in results)


def test_vectors_exercise_every_model_kind_and_required_cases(monkeypatch):
    seen = collections.Counter()
    orig = tables.Model.read

    def record(r, n):
        m = orig(r, n)
        seen[(kind, m.kind)] += 1
        return m

    monkeypatch.setattr(tables.Model, "read", staticmethod(record))
    manifest = json.loads(MANIFEST.read_text())
    dec = OwnDecoder()
    for case in manifest["cases"]:
        if not case.get("valid", True):
            continue
        kind = case["kind"]
        data = (MANIFEST.parent / case["file"]).read_bytes()
        dec.decode_gsi_params(data) if kind == "gsi" else dec.decode_gsz(data)
    for fmt in ("gsi", "gsz"):
        for k in (tables.KIND_UNIFORM, tables.KIND_GEOMETRIC, tables.KIND_EXPLICIT):
            assert seen[(fmt, k)] > 0, f"no {fmt} vector uses model kind {k}"
    errors = {c["error"] for c in manifest["cases"] if not c.get("valid", True)}
    assert errors >= {"FormatError", "TruncatedError", "CorruptError", "VersionError", "UnsupportedError",
                      "LimitError"}


def test_runner_detects_a_wrong_decoder(tmp_path):
    class Wrong(OwnDecoder):
        def decode_gsi_params(self, data):
            p = super().decode_gsi_params(data)
            p["means"] = p["means"] + 1e-3
            return p

    results = run_manifest(MANIFEST, Wrong(), select="gsi-rgb", log=lambda s: None)
    assert results and not any(r.ok for r in results if "trunc" not in r.case and r.case.startswith("gsi-rgb"))
