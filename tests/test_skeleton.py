"""The Human3.6M 17-joint skeleton and the person crop."""

import numpy as np

from structpose.crop import crop_resize, from_crop, person_box, to_crop
from structpose.skeleton import H36M, root_relative


def test_joint_order_and_parents():
    assert H36M.num_joints == 17
    assert H36M.parents == (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)
    assert H36M.names[H36M.index("LShoulder")] == "LShoulder" and H36M.index("LShoulder") == 11
    for j in H36M.left:
        assert H36M.names[j].startswith("L")
    for j in H36M.right:
        assert H36M.names[j].startswith("R")


def test_flip_permutation_is_an_involution_that_swaps_sides():
    perm = H36M.flip_permutation
    np.testing.assert_array_equal(perm[perm], np.arange(17))
    for left, right in zip(H36M.left, H36M.right, strict=True):
        assert perm[left] == right and H36M.names[left][1:] == H36M.names[right][1:]


def test_limbs_and_groups():
    assert len(H36M.limbs) == 16
    for group in ("lower", "upper", "full"):
        for limb in H36M.limb_groups[group]:
            assert limb in H36M.limbs
    assert set(H36M.limb_groups["full"]) == set(H36M.limb_groups["lower"]) | set(H36M.limb_groups["upper"])


def test_bone_lengths_known_values():
    pose = np.zeros((17, 3))
    pose[2] = [0, 0, -450]  # RKnee 450 mm below RHip (which sits at the origin)
    lengths = H36M.bone_lengths(pose[None], limbs=((1, 2),))
    np.testing.assert_allclose(lengths, [[450.0]])
    rel = root_relative(pose + 7.0)
    np.testing.assert_allclose(rel[0], 0)


def test_person_box_and_crop_coordinates_round_trip():
    joints = np.array([[100.0, 200.0], [140.0, 300.0]])
    box = person_box(joints, margin=0.25)
    np.testing.assert_allclose(box, [45.0, 175.0, 195.0, 325.0])  # side 100 * 1.5, centred on (120, 250)
    crop = to_crop(joints, box, 64)
    assert np.all((crop >= 0) & (crop <= 64))
    np.testing.assert_allclose(from_crop(crop, box, 64), joints)


def test_crop_resize_takes_the_box_and_pads_black():
    image = np.zeros((100, 100, 3), np.uint8)
    image[40:60, 40:60] = 255
    out = crop_resize(image, np.array([30.0, 30.0, 70.0, 70.0]), 40)
    assert out.shape == (40, 40, 3)
    assert out[20, 20, 0] == 255 and out[2, 2, 0] == 0
    outside = crop_resize(image, np.array([-50.0, -50.0, 0.0, 0.0]), 16)
    assert outside.max() == 0
