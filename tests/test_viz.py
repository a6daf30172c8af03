"""Figure helpers: reference lines on ratio axes, 3D poses that fill their axes, clear errors on bad shapes."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from structpose.errors import InputError
from structpose.paper import paper_ratios
from structpose.viz import draw_skeleton_2d, plot_pose_3d, ratio_reference_lines


def test_ratio_axis_marks_one_and_the_paper() -> None:
    fig, ax = plt.subplots()
    ax.errorbar([0, 1], [1.02, 0.99], yerr=[0.02, 0.03], fmt="o")  # CIs far from the paper's ratio
    paper = paper_ratios()["ours/cnn"]
    ratio_reference_lines(ax, paper)
    ys = sorted(line.get_ydata()[0] for line in ax.get_lines() if len(set(line.get_ydata())) == 1)
    assert ys == pytest.approx([paper, 1.0])
    assert ax.get_ylim()[0] < paper  # the axis stretches to show the paper's line
    labels = [line.get_label() for line in ax.get_lines()]
    assert f"Tekin et al. 2016: {paper:.3f}" in labels and "1: no difference" in labels
    plt.close(fig)
    fig, ax = plt.subplots()
    ratio_reference_lines(ax)  # no paper value: only the line at 1
    assert [line.get_ydata()[0] for line in ax.get_lines()] == [1.0]
    plt.close(fig)


def test_a_pose_fills_an_equal_aspect_cube() -> None:
    fig = plt.figure()
    ax = fig.add_subplot(projection="3d")
    pose = np.zeros((17, 3))
    pose[:, 1] = np.linspace(-800.0, 800.0, 17)  # 1.6 m tall (camera y), thin in x and z
    plot_pose_3d(ax, pose)
    # shown axes: x, z (depth), -y; the cube's half side is 800 * 1.1 around the centre
    for lim in (ax.get_xlim(), ax.get_ylim(), ax.get_zlim()):
        assert lim == pytest.approx((-880.0, 880.0))
    plot_pose_3d(ax, pose + np.array([1000.0, 0.0, 0.0]))  # a second pose: the cube grows to hold both
    assert ax.get_xlim()[1] > 1000.0
    plt.close(fig)


def test_bad_shapes_are_named() -> None:
    fig, ax = plt.subplots()
    with pytest.raises(InputError, match=r"\(17, 2\)"):
        draw_skeleton_2d(ax, np.zeros((16, 2)))
    plt.close(fig)
