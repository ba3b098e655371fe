"""Cameras: reference-3DGS cameras.json round trip and validation, orbit views."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from gscodec.errors import InputError
from gscodec.render.cameras import (Camera, camera_from_pose, intrinsics, load_cameras_json,
                                    look_at, orbit_cameras, save_cameras_json, scene_core)


def rot_y(a: float) -> np.ndarray:
    return np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])


def reference_entry(i: int = 0) -> dict:
    """An entry as the reference 3DGS trainer writes it (c2w rotation, camera centre)."""
    return {"id": i, "img_name": f"DSC{i:04d}", "width": 160, "height": 90,
            "position": [0.5, -0.2, -3.0], "rotation": rot_y(0.3).tolist(),
            "fy": 120.0, "fx": 121.0}


def write(tmp_path, data) -> str:
    p = tmp_path / "cameras.json"
    p.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(p)


def test_load_reference_format(tmp_path):
    cams = load_cameras_json(write(tmp_path, [reference_entry(0), reference_entry(1)]))
    assert len(cams) == 2
    c = cams[0]
    assert (c.width, c.height, c.name) == (160, 90, "DSC0000")
    np.testing.assert_allclose(c.K, [[121.0, 0, 80.0], [0, 120.0, 45.0], [0, 0, 1]])
    np.testing.assert_allclose(c.position, [0.5, -0.2, -3.0], atol=1e-12)
    # viewmat maps the camera centre to the origin and the c2w z axis to camera +z.
    np.testing.assert_allclose(c.viewmat @ np.array([0.5, -0.2, -3.0, 1.0]), [0, 0, 0, 1], atol=1e-12)
    fwd = rot_y(0.3)[:, 2]
    np.testing.assert_allclose(c.viewmat[:3, :3] @ fwd, [0, 0, 1], atol=1e-12)


def test_round_trip(tmp_path):
    k = intrinsics(300.0, 310.0, 640, 480)
    cams = [look_at(np.array([1.0, 2.0, 3.0]), np.zeros(3), np.array([0, -1.0, 0]), k, 640, 480, "a"),
            camera_from_pose(np.array([0.0, 0.0, -5.0]), rot_y(-1.0), intrinsics(50, 50, 64, 32, 30.0, 17.0),
                             64, 32, "b")]
    p = tmp_path / "out.json"
    save_cameras_json(cams, p)
    raw = json.loads(p.read_text())
    assert set(raw[0]) == {"id", "img_name", "width", "height", "position", "rotation", "fy", "fx"}
    assert raw[1]["cx"] == 30.0                     # off-centre principal point is kept
    back = load_cameras_json(p)
    for a, b in zip(cams, back):
        np.testing.assert_allclose(a.viewmat, b.viewmat, atol=1e-12)
        np.testing.assert_allclose(a.K, b.K)
        assert (a.width, a.height, a.name) == (b.width, b.height, b.name)


@pytest.mark.parametrize("mutate, message", [
    (lambda e: e.pop("fx"), "missing"),
    (lambda e: e.pop("rotation"), "missing"),
    (lambda e: e.update(width=0), "width"),
    (lambda e: e.update(height=-5), "height"),
    (lambda e: e.update(width=10 ** 7), "width"),
    (lambda e: e.update(width=12.5), "width"),
    (lambda e: e.update(fx=-1.0), "focal"),
    (lambda e: e.update(fy="big"), "fy"),
    (lambda e: e.update(position=[1.0, 2.0]), "position"),
    (lambda e: e.update(position=[1.0, "x", 2.0]), "position"),
    (lambda e: e.update(rotation=[[1, 0, 0], [0, 1, 0]]), "rotation"),
    (lambda e: e.update(rotation=[[2, 0, 0], [0, 1, 0], [0, 0, 1]]), "rotation"),
    (lambda e: e.update(rotation=[[-1, 0, 0], [0, 1, 0], [0, 0, 1]]), "rotation"),
    (lambda e: e.update(width=True), "width"),
])
def test_malformed_entries_raise_input_error(tmp_path, mutate, message):
    e = reference_entry()
    mutate(e)
    with pytest.raises(InputError, match=message):
        load_cameras_json(write(tmp_path, [e]))


def test_nan_values_raise_input_error(tmp_path):
    text = json.dumps([reference_entry()]).replace("121.0", "NaN")
    with pytest.raises(InputError, match="finite"):
        load_cameras_json(write(tmp_path, text))
    text = json.dumps([reference_entry()]).replace("0.5", "Infinity")
    with pytest.raises(InputError, match="non-finite"):
        load_cameras_json(write(tmp_path, text))


@pytest.mark.parametrize("content", ["", "{not json", "{}", "[]", "[1, 2]", '"x"', "\udcff"])
def test_malformed_files_raise_input_error(tmp_path, content):
    p = tmp_path / "cameras.json"
    p.write_bytes(content.encode("utf-8", "surrogateescape"))
    with pytest.raises(InputError) as info:
        load_cameras_json(p)
    assert "\n" not in str(info.value) and str(p) in str(info.value)


def test_missing_file_raises_input_error(tmp_path):
    with pytest.raises(InputError, match="cannot read"):
        load_cameras_json(tmp_path / "nope.json")


def test_deeply_nested_json_is_an_input_error(tmp_path):
    with pytest.raises(InputError):
        load_cameras_json(write(tmp_path, "[" * 100000 + "]" * 100000))


def test_orbit_cameras_look_at_the_core_and_ignore_outliers():
    rng = np.random.default_rng(0)
    core = rng.normal(size=(5000, 3)) * 0.5 + np.array([3.0, -1.0, 2.0])
    floaters = rng.uniform(-200, 200, size=(200, 3))
    means = np.concatenate([core, floaters])
    centre, radius = scene_core(means)
    assert np.linalg.norm(centre - [3.0, -1.0, 2.0]) < 0.1 and radius < 2.0
    cams = orbit_cameras(means, n=12, width=200, height=100, fov_deg=50.0, elevation_deg=20.0)
    assert len(cams) == 12 and len({c.name for c in cams}) == 12
    dists = []
    for c in cams:
        p = c.viewmat @ np.append(centre, 1.0)
        assert p[2] > 0
        u = c.K @ (p[:3] / p[2])
        np.testing.assert_allclose(u[:2], [100.0, 50.0], atol=1e-6)   # centre at the image centre
        r = c.viewmat[:3, :3]
        np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(r) > 0
        dists.append(np.linalg.norm(c.position - centre))
        # The core's radius fits inside the smaller image side's field of view.
        half = math.degrees(math.asin(radius / dists[-1]))
        assert half < 25.0
        # Elevation: 20 degrees towards world up (-y).
        d = (c.position - centre) / dists[-1]
        assert abs(math.degrees(math.asin(d @ np.array([0, -1.0, 0]))) - 20.0) < 1e-6
        # Image up (camera -y) has a positive component along world up.
        assert (-r[1]) @ np.array([0, -1.0, 0]) > 0.5
    assert np.ptp(dists) < 1e-9
    positions = np.array([c.position for c in cams])
    assert np.linalg.norm(positions.mean(0)[[0, 2]] - centre[[0, 2]]) < 1e-6   # a full ring


def test_orbit_cameras_reject_bad_arguments():
    with pytest.raises(InputError):
        orbit_cameras(np.zeros((10, 3)), n=0)
    with pytest.raises(InputError):
        orbit_cameras(np.full((10, 3), np.nan))


def test_camera_scaled_keeps_view():
    c = Camera(np.eye(4), intrinsics(100, 100, 200, 100), 200, 100, "x").scaled(0.5)
    assert (c.width, c.height) == (100, 50)
    np.testing.assert_allclose(c.K, [[50, 0, 50], [0, 50, 25], [0, 0, 1]])
