"""The renderer: determinism, labels matching the pixels, left/right, front/back, ray casting, cameras."""

from dataclasses import replace

import numpy as np
import pytest

from structpose.camera import H36M_CAMERA_IDS, h36m_intrinsics
from structpose.crop import to_crop
from structpose.render import PARTS, render_sample, sample_appearance, sample_camera
from structpose.render.background import procedural_background
from structpose.render.cameras import DISTANCE_MM, h36m_height_range, look_rotation
from structpose.render.demo import POSES, demo_pose
from structpose.render.raycast import capsule_boxes, crop_rays, raycast
from structpose.skeleton import H36M

SIZE = 64


def _render(seed: int, kind: str = "walk", size: int = SIZE, **kw):
    rng = np.random.default_rng(seed)
    pose = demo_pose(kind, yaw_deg=rng.uniform(0, 360), position=tuple(rng.uniform(-1500, 1500, 2)))
    return pose, render_sample(pose, sample_camera(rng, pose), sample_appearance(rng), rng, size, **kw)


def _facing_camera(pose: np.ndarray, azimuth_deg: float, distance: float = 4000.0):
    """A camera at chest height, ``azimuth_deg`` around the root (90: on +y, in front of a demo pose)."""
    a = np.deg2rad(azimuth_deg)
    centre = pose[0] + [distance * np.cos(a), distance * np.sin(a), 0.0]
    centre[2] = 1500.0
    R = look_rotation(pose[0] - centre)
    return replace(h36m_intrinsics("54138969"), R=R, t=-R @ centre)


def test_same_seed_same_bytes_different_seed_different():
    a, b, c = _render(3)[1], _render(3)[1], _render(4)[1]
    assert a.image.dtype == np.uint8 and a.image.shape == (SIZE, SIZE, 3)
    assert a.image.tobytes() == b.image.tobytes()
    assert a.image.tobytes() != c.image.tobytes()


def test_labels_are_consistent_with_the_camera():
    pose, s = _render(5, "squat", size=128)
    cam_pose = s.camera.world_to_camera(pose)
    np.testing.assert_allclose(s.root_cam, cam_pose[0])
    np.testing.assert_allclose(s.pose3d, cam_pose - cam_pose[0], atol=1e-3)  # float32 labels: ~3e-5 mm rounding
    assert s.pose3d.dtype == np.float32 and s.joints2d.dtype == np.float32
    np.testing.assert_allclose(s.joints2d, to_crop(s.camera.project(cam_pose), s.box, 128), atol=1e-3)  # float32 px
    assert s.box.shape == (4,) and s.box[2] - s.box[0] == pytest.approx(s.box[3] - s.box[1])


@pytest.mark.parametrize("seed", range(12))
def test_every_joint_inside_the_crop_and_on_the_body(seed):
    kind = POSES[seed % len(POSES)]
    _, s = _render(seed, kind, maps=True)
    assert np.all((s.joints2d >= 0) & (s.joints2d < SIZE))
    # joints lie inside the body volume, so the pixels they project to are person pixels
    for name in ("Hip", "Spine", "Thorax", "RHip", "LHip", "RKnee", "LKnee", "Neck/Nose", "LElbow", "RElbow"):
        x, y = s.joints2d[H36M.index(name)].astype(int)
        assert s.mask[y, x] > 0.5, (kind, name)
    # and the person does not fill the crop: the border rows/columns are mostly background
    border = np.concatenate([s.mask[0], s.mask[-1], s.mask[:, 0], s.mask[:, -1]])
    assert border.mean() < 0.1


def test_depth_map_matches_the_root():
    pose, s = _render(7, "stand", maps=True)
    x, y = s.joints2d[0].astype(int)
    # the belly's surface is in front of the root joint, by less than the torso's radius
    assert s.root_cam[2] - 250 < s.depth[y, x] < s.root_cam[2]
    assert np.all(np.isinf(s.depth[s.mask == 0]))


@pytest.mark.parametrize("azimuth, left_on_right", [(90.0, True), (-90.0, False)])
def test_left_arm_raised_shows_on_the_correct_side(azimuth, left_on_right):
    """Seen from the front the subject's left is on the image's right; from the back, on its left."""
    pose = demo_pose("left_arm_up")
    cam = _facing_camera(pose, azimuth)
    app = sample_appearance(np.random.default_rng(0))
    s = render_sample(pose, cam, app, np.random.default_rng(0), 128, maps=True)
    centre_x = s.joints2d[H36M.index("Thorax"), 0]
    head_top = s.joints2d[H36M.index("Head"), 1]
    ys, xs = np.nonzero(s.mask[: int(head_top) - 4] > 0.5)  # only the raised arm is above the head
    assert len(xs) > 20
    assert (xs.mean() > centre_x) == left_on_right
    left_arm = np.isin(s.parts, [PARTS.index(f"l_{p}") for p in ("upper_arm", "forearm", "hand")])
    right_arm = np.isin(s.parts, [PARTS.index(f"r_{p}") for p in ("upper_arm", "forearm", "hand")])
    assert (np.nonzero(left_arm)[1].mean() > np.nonzero(right_arm)[1].mean()) == left_on_right
    lw, rw = s.joints2d[H36M.index("LWrist"), 0], s.joints2d[H36M.index("RWrist"), 0]
    assert (lw > rw) == left_on_right


def test_face_in_front_hair_behind():
    """Red skin, blue hair: the visible head is mostly face from the front and mostly hair from behind."""
    app = replace(
        sample_appearance(np.random.default_rng(1)),
        skin=(0.9, 0.2, 0.2),
        hair=(0.2, 0.2, 0.9),
        hairline=0.6,
        hair_low=-0.3,
    )
    pose = demo_pose("stand")
    redness = []
    for azimuth in (90.0, -90.0):
        cam = _facing_camera(pose, azimuth, 3000)
        s = render_sample(pose, cam, app, np.random.default_rng(2), 128, maps=True)
        head = s.image[s.parts == PARTS.index("head")].astype(float)
        assert len(head) > 30
        redness.append(np.mean(head[:, 0] - head[:, 2]))
    assert redness[0] > 20 and redness[1] < -20


def test_invalid_poses_raise_clear_errors():
    pose = demo_pose("stand")
    cam = _facing_camera(pose, 90.0)
    app, rng = sample_appearance(np.random.default_rng(0)), np.random.default_rng(0)
    behind = pose.copy()
    away = (cam.center - pose[0]) / np.linalg.norm(cam.center - pose[0])
    behind[H36M.index("LWrist")] = cam.center + 500 * away
    with pytest.raises(ValueError, match="behind the camera.*: LWrist"):
        render_sample(behind, cam, app, rng)
    with pytest.raises(ValueError, match="17, 3"):
        render_sample(pose[:16], cam, app, rng)
    nan = pose.copy()
    nan[3, 1] = np.nan
    with pytest.raises(ValueError, match="finite"):
        render_sample(nan, cam, app, rng)
    close = pose + (cam.center - pose[0]) * (1 - 60 / np.linalg.norm(cam.center - pose[0]))  # root 6 cm away
    with pytest.raises(ValueError):
        render_sample(close, cam, app, rng)


def test_camera_sampling_matches_human36m():
    rng = np.random.default_rng(0)
    pose = demo_pose("stand", position=(800.0, -300.0))
    cams = [sample_camera(rng, pose) for _ in range(1500)]
    centres = np.array([c.center for c in cams])
    offset = centres - pose[0]
    dist = np.linalg.norm(offset, axis=1)
    assert DISTANCE_MM[0] - 1e-6 <= dist.min() and dist.max() <= DISTANCE_MM[1] + 1e-6
    assert dist.min() < 3300 and dist.max() > 5700
    lo, hi = h36m_height_range()
    assert 1400 < lo < hi < 1700  # the published camera heights
    height = centres[:, 2] - pose[:, 2].min()
    assert np.all((height > lo - 101) & (height < hi + 101))
    azimuth = np.arctan2(offset[:, 1], offset[:, 0])
    counts = np.histogram(azimuth, bins=8, range=(-np.pi, np.pi))[0]
    assert counts.min() > 0.7 * len(cams) / 8  # all around the subject
    for c in cams[:200]:
        assert abs(c.R[0, 2]) < 1e-12  # no roll: the image x axis is horizontal
        assert c.R[1, 2] < 0  # image y points down
        root = c.world_to_camera(pose[0])
        assert np.degrees(np.arctan2(np.hypot(root[0], root[1]), root[2])) < 6.0  # looks at the root
    ids = {c.id for c in cams}
    assert ids == set(H36M_CAMERA_IDS)
    assert cams[0].fx == h36m_intrinsics(cams[0].id).fx and cams[0].k == h36m_intrinsics(cams[0].id).k


def test_rays_pass_through_the_crop_pixels_despite_distortion():
    rng = np.random.default_rng(3)
    pose = demo_pose("tpose", position=(1500.0, 1500.0))
    cam = sample_camera(rng, pose)
    assert abs(cam.k[0]) > 0.1  # a real, distorting lens
    box = np.array([100.0, 150.0, 900.0, 950.0])  # reaches towards the image corners
    n = 96
    rays = crop_rays(cam, box, n)
    np.testing.assert_allclose(np.linalg.norm(rays, axis=-1), 1, atol=1e-6)  # float32 rays: 1.2e-7 rounding
    px = cam.project(rays.astype(np.float64) * 1000.0)
    centres = box[0] + (np.arange(n) + 0.5) * (box[2] - box[0]) / n
    err = np.hypot(px[..., 0] - centres[None, :], px[..., 1] - (centres - box[0] + box[1])[:, None])
    assert err.max() < 0.01 * (box[2] - box[0]) / n  # a hundredth of a crop pixel


def _reference_hits(rays: np.ndarray, a: np.ndarray, b: np.ndarray, r: np.ndarray):
    """float64 ray-capsule intersection without the quadratic: the distance from a point moving along the
    ray to a segment is convex in t, so ternary search finds its minimum and bisection the entry point."""
    d = rays.reshape(-1, 1, 3).astype(np.float64)
    ba = b - a

    def gap(t):  # (M, N) distance of t * d from each segment, minus the radius
        p = t[..., None] * d
        s = np.einsum("mnk,nk->mn", p - a, ba) / np.maximum(np.einsum("nk,nk->n", ba, ba), 1e-9)
        s = np.clip(s, 0, 1)
        return np.linalg.norm(p - a - s[..., None] * ba, axis=-1) - r

    lo, hi = np.zeros((len(d), len(r))), np.full((len(d), len(r)), 10000.0)
    for _ in range(70):
        m1, m2 = lo + (hi - lo) / 3, hi - (hi - lo) / 3
        closer = gap(m1) < gap(m2)
        hi, lo = np.where(closer, m2, hi), np.where(closer, lo, m1)
    t_min = (lo + hi) / 2
    hit = gap(t_min) <= 0
    lo, hi = np.zeros_like(t_min), t_min
    for _ in range(50):
        mid = (lo + hi) / 2
        inside = gap(mid) <= 0
        hi, lo = np.where(inside, mid, hi), np.where(inside, lo, mid)
    t = np.where(hit, hi, np.inf)
    return t.min(axis=1), np.where(hit.any(axis=1), t.argmin(axis=1), -1)


def test_raycast_matches_a_float64_reference_and_culling_changes_nothing():
    rng = np.random.default_rng(0)
    cam = replace(h36m_intrinsics("55011271"), R=np.eye(3), t=np.zeros(3))
    a = rng.uniform([-400, -400, 3500], [400, 400, 5000], (6, 3))
    b = a + rng.normal(0, 300, (6, 3))
    b[0] = a[0]  # a sphere
    r = rng.uniform(40, 120, 6)
    box = np.array([cam.cx - 200, cam.cy - 200, cam.cx + 200, cam.cy + 200])
    n = 48
    rays = crop_rays(cam, box, n)
    windows = capsule_boxes(cam, box, n, a, b, r)
    dist, index = raycast(rays, a, b, r, windows)
    dist_all, index_all = raycast(rays, a, b, r)
    assert (index >= 0).mean() > 0.1
    # bit-exact is sound: culling only skips pairs; each (ray, capsule) pair is the same elementwise float32
    # arithmetic (separately rounded numpy ufuncs, no reduction) with or without windows
    np.testing.assert_array_equal(index, index_all)
    np.testing.assert_array_equal(dist, dist_all)
    t_ref, index_ref = _reference_hits(rays, a, b, r)
    agree = (index.ravel() >= 0) == np.isfinite(t_ref)
    assert agree.mean() > 0.998  # disagreements only on silhouettes, where float32 grazes
    both = np.isfinite(dist.ravel()) & np.isfinite(t_ref)
    assert np.abs(dist.ravel()[both] - t_ref[both]).max() < 1.0  # mm
    assert (index.ravel()[both] == index_ref[both]).mean() > 0.998


def test_backgrounds_cover_every_kind_in_range():
    rng = np.random.default_rng(0)
    imgs = [procedural_background(rng, 32) for _ in range(60)]
    assert all(im.shape == (3, 32, 32) and im.dtype == np.float32 for im in imgs)
    assert all(im.min() >= 0 and im.max() <= 1 for im in imgs)
    spread = [float(im.std(axis=(1, 2)).max()) for im in imgs]
    assert min(spread) < 1e-6 and max(spread) > 0.1  # flat ones and textured ones


def test_appearance_sampling_varies_and_is_deterministic():
    apps = [sample_appearance(np.random.default_rng(i)) for i in range(200)]
    assert sample_appearance(np.random.default_rng(7)) == apps[7]
    thickness = np.array([a.thickness for a in apps])
    assert 0.85 <= thickness.min() and thickness.max() <= 1.2 and thickness.std() > 0.05
    assert 0.3 < np.mean([a.long_sleeves for a in apps]) < 0.9
    tops = np.array([a.top for a in apps])
    assert tops.min() >= 0 and tops.max() <= 1 and tops.std(axis=0).min() > 0.1
