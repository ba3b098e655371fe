"""Pinhole cameras: the reference 3DGS `cameras.json`, and orbit views around a scene's core.

Numpy only (no torch), so decoders can import it. Convention: OpenCV / COLMAP camera frame
(x right, y down, z forward); `viewmat` maps world points to camera coordinates.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gscodec.errors import InputError, OutputError

MAX_IMAGE_SIDE = 32768          # pixels; larger is treated as a malformed file
MAX_CAMERAS = 100_000
MAX_JSON_BYTES = 64 << 20
REQUIRED_FIELDS = ("id", "img_name", "width", "height", "position", "rotation", "fy", "fx")


@dataclass
class Camera:
    """A pinhole camera: world-to-camera `viewmat` (4,4), intrinsics `K` (3,3), size, name."""

    viewmat: np.ndarray
    K: np.ndarray
    width: int
    height: int
    name: str = ""

    @property
    def position(self) -> np.ndarray:
        """Camera centre in world coordinates (3,)."""
        r, t = self.viewmat[:3, :3], self.viewmat[:3, 3]
        return -r.T @ t

    @property
    def cam_to_world_rotation(self) -> np.ndarray:
        """Rotation (3,3) whose columns are the camera axes in world coordinates."""
        return self.viewmat[:3, :3].T.copy()

    @property
    def fx(self) -> float:
        """Focal length in pixels along x."""
        return float(self.K[0, 0])

    @property
    def fy(self) -> float:
        """Focal length in pixels along y."""
        return float(self.K[1, 1])

    def scaled(self, factor: float) -> "Camera":
        """The same view at `factor` times the resolution (intrinsics scaled to match)."""
        w = max(1, int(round(self.width * factor)))
        h = max(1, int(round(self.height * factor)))
        k = self.K.copy()
        k[0] *= w / self.width
        k[1] *= h / self.height
        return Camera(self.viewmat.copy(), k, w, h, self.name)


def intrinsics(fx: float, fy: float, width: int, height: int,
               cx: float | None = None, cy: float | None = None) -> np.ndarray:
    """K (3,3) with the principal point at the image centre unless given."""
    return np.array([[fx, 0.0, width / 2.0 if cx is None else cx],
                     [0.0, fy, height / 2.0 if cy is None else cy],
                     [0.0, 0.0, 1.0]], dtype=np.float64)


def camera_from_pose(position: np.ndarray, rotation_c2w: np.ndarray, K: np.ndarray,
                     width: int, height: int, name: str = "") -> Camera:
    """Camera from its centre and camera-to-world rotation (columns = camera axes in world)."""
    r = np.asarray(rotation_c2w, dtype=np.float64)
    p = np.asarray(position, dtype=np.float64)
    view = np.eye(4)
    view[:3, :3] = r.T
    view[:3, 3] = -r.T @ p
    return Camera(view, np.asarray(K, dtype=np.float64), int(width), int(height), name)


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray, K: np.ndarray,
            width: int, height: int, name: str = "") -> Camera:
    """Camera at `eye` looking at `target`, image-up along `up` (OpenCV axes)."""
    eye = np.asarray(eye, dtype=np.float64)
    fwd = np.asarray(target, dtype=np.float64) - eye
    fwd /= np.linalg.norm(fwd)
    up = np.asarray(up, dtype=np.float64)
    right = np.cross(fwd, up)
    if np.linalg.norm(right) < 1e-9:    # looking along `up`: pick any perpendicular
        right = np.cross(fwd, np.array([1.0, 0.0, 0.0]) if abs(fwd[0]) < 0.9 else
                         np.array([0.0, 1.0, 0.0]))
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    return camera_from_pose(eye, np.stack([right, down, fwd], axis=1), K, width, height, name)


# ----------------------------------------------------------------------------- cameras.json


def _number(entry: dict, key: str, where: str) -> float:
    v = entry[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise InputError(f"{where}: field '{key}' must be a number, got {type(v).__name__}")
    if not math.isfinite(float(v)):
        raise InputError(f"{where}: field '{key}' is not finite")
    return float(v)


def _size(entry: dict, key: str, where: str) -> int:
    v = _number(entry, key, where)
    if v != int(v) or v <= 0 or v > MAX_IMAGE_SIDE:
        raise InputError(f"{where}: '{key}' must be an integer in 1..{MAX_IMAGE_SIDE}, got {v:g}")
    return int(v)


def _array(entry: dict, key: str, shape: tuple[int, ...], where: str) -> np.ndarray:
    try:
        a = np.array(entry[key], dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{where}: field '{key}' must be numbers of shape {shape}") from None
    if a.shape != shape:
        raise InputError(f"{where}: field '{key}' has shape {a.shape}, expected {shape}")
    if not np.isfinite(a).all():
        raise InputError(f"{where}: field '{key}' has non-finite values")
    return a


def _parse_entry(entry: object, index: int) -> Camera:
    where = f"camera {index}"
    if not isinstance(entry, dict):
        raise InputError(f"{where}: expected an object, got {type(entry).__name__}")
    missing = [k for k in REQUIRED_FIELDS if k not in entry]
    if missing:
        raise InputError(f"{where}: missing field(s) {', '.join(missing)}")
    width, height = _size(entry, "width", where), _size(entry, "height", where)
    fx, fy = _number(entry, "fx", where), _number(entry, "fy", where)
    if fx <= 0 or fy <= 0 or fx > 1e3 * MAX_IMAGE_SIDE or fy > 1e3 * MAX_IMAGE_SIDE:
        raise InputError(f"{where}: focal lengths must be positive and sane, got fx={fx:g} fy={fy:g}")
    pos = _array(entry, "position", (3,), where)
    rot = _array(entry, "rotation", (3, 3), where)
    if np.abs(rot.T @ rot - np.eye(3)).max() > 1e-3 or np.linalg.det(rot) <= 0:
        raise InputError(f"{where}: 'rotation' is not a proper rotation matrix")
    cx = _number(entry, "cx", where) if "cx" in entry else None
    cy = _number(entry, "cy", where) if "cy" in entry else None
    name = entry["img_name"]
    if not isinstance(name, (str, int)):
        raise InputError(f"{where}: 'img_name' must be a string")
    return camera_from_pose(pos, rot, intrinsics(fx, fy, width, height, cx, cy),
                            width, height, str(name))


def load_cameras_json(path: str | os.PathLike) -> list[Camera]:
    """Cameras from a reference-3DGS `cameras.json` (InputError on any malformed content)."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_JSON_BYTES:
            raise InputError(f"cameras file is too large ({size} bytes)", str(p))
        data = json.loads(p.read_text(encoding="utf-8"))
    except InputError:
        raise
    except OSError as e:
        raise InputError(f"cannot read cameras file: {e.strerror or e}", str(p)) from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise InputError(f"not a valid JSON cameras file: {str(e).splitlines()[0]}", str(p)) from None
    if not isinstance(data, list):
        raise InputError("cameras file must hold a JSON list of cameras", str(p))
    if not data:
        raise InputError("cameras file holds no cameras", str(p))
    if len(data) > MAX_CAMERAS:
        raise InputError(f"too many cameras ({len(data)} > {MAX_CAMERAS})", str(p))
    try:
        return [_parse_entry(e, i) for i, e in enumerate(data)]
    except InputError as e:
        raise e.with_path(str(p)) from None


def cameras_to_json(cameras: list[Camera]) -> list[dict]:
    """The reference-3DGS JSON objects for `cameras` (cx/cy added only when off-centre)."""
    out = []
    for i, cam in enumerate(cameras):
        entry = {"id": i, "img_name": cam.name or f"view_{i:04d}", "width": int(cam.width),
                 "height": int(cam.height), "position": cam.position.tolist(),
                 "rotation": cam.cam_to_world_rotation.tolist(),
                 "fy": float(cam.K[1, 1]), "fx": float(cam.K[0, 0])}
        if abs(cam.K[0, 2] - cam.width / 2.0) > 1e-9 or abs(cam.K[1, 2] - cam.height / 2.0) > 1e-9:
            entry["cx"], entry["cy"] = float(cam.K[0, 2]), float(cam.K[1, 2])
        out.append(entry)
    return out


def save_cameras_json(cameras: list[Camera], path: str | os.PathLike) -> None:
    """Write `cameras` in the reference-3DGS `cameras.json` format."""
    try:
        Path(path).write_text(json.dumps(cameras_to_json(cameras)), encoding="utf-8")
    except OSError as e:
        raise OutputError(f"cannot write cameras file: {e.strerror or e}", str(path)) from None


# ----------------------------------------------------------------------------- orbit views


def scene_core(means: np.ndarray, percentile: float = 90.0) -> tuple[np.ndarray, float]:
    """Robust centre (per-axis median) and radius (distance percentile) of a point set."""
    pts = np.asarray(means, dtype=np.float64).reshape(-1, 3)
    pts = pts[np.isfinite(pts).all(axis=1)]
    if len(pts) == 0:
        raise InputError("scene has no finite Gaussian positions")
    centre = np.median(pts, axis=0)
    radius = float(np.percentile(np.linalg.norm(pts - centre, axis=1), percentile))
    if not radius > 0:
        radius = 1.0
    return centre, radius


def orbit_cameras(means: np.ndarray, n: int = 24, width: int = 800, height: int = 800,
                  fov_deg: float = 50.0, elevation_deg: float = 20.0,
                  up: np.ndarray | tuple = (0.0, -1.0, 0.0), margin: float = 1.1) -> list[Camera]:
    """A ring of `n` views at `elevation_deg` looking at the scene's dense core, framing it.

    `up` is the world up direction; the default -y matches COLMAP / 3DGS captures taken with
    upright cameras (OpenCV y-down camera frame).
    """
    if n < 1 or width < 1 or height < 1 or not 1.0 <= fov_deg < 179.0:
        raise InputError("orbit cameras need n >= 1, a positive size and 1 <= fov < 179 degrees")
    centre, radius = scene_core(means)
    up_v = np.asarray(up, dtype=np.float64)
    up_v = up_v / np.linalg.norm(up_v)
    # fov_deg is the field of view across the smaller image side, which must hold the core's
    # bounding sphere: distance = radius / sin(half-angle).
    half = math.radians(fov_deg) / 2.0
    dist = margin * radius / math.sin(half)
    f = (min(width, height) / 2.0) / math.tan(half)
    k = intrinsics(f, f, width, height)
    # Orthonormal basis of the orbit plane perpendicular to `up`.
    a = np.array([1.0, 0.0, 0.0]) if abs(up_v[0]) < 0.9 else np.array([0.0, 0.0, 1.0])
    e1 = np.cross(up_v, a)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(up_v, e1)
    elev = math.radians(elevation_deg)
    cams = []
    for i in range(n):
        az = 2.0 * math.pi * i / n
        d = math.cos(elev) * (math.cos(az) * e1 + math.sin(az) * e2) + math.sin(elev) * up_v
        cams.append(look_at(centre + dist * d, centre, up_v, k, width, height, f"orbit_{i:03d}"))
    return cams
