"""``structpose view``: one self-contained, interactive HTML page of predicted (and ground-truth) 3D poses.

The page holds plotly.js itself (inlined: nothing is fetched when it is opened, it works offline) and,
per sample, the predicted skeleton and, when the ground truth is known, the ground-truth skeleton beside it
in a scene of its own: both rotatable (the two cameras follow each other), joint names (camera-frame
coordinates, mm, and the joint's error) on hover, and a slider over the samples whose label shows each
sample's MPJPE (mm, root-centred, no alignment: :func:`structpose.metrics.mpjpe`).

Poses are (N, 17, 3) mm, root-relative, in the camera frame (x right, y down, z forward); they are shown
upright: the scene's axes are camera x, z (depth) and -y (up), a proper rotation (no mirroring).

Inputs (:func:`load_view_inputs`): a ``structpose predict`` output (its ``poses.npz``, its folder, or a
per-image JSON with ``poses_mm``), or a ``structpose reproduce`` run folder (the first seed's
``predictions.npz``, the ground truth read from the test split of the run's ``data.root``).
"""

from __future__ import annotations

import html
import json
import logging
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from structpose.errors import FormatError, InputError, StoreError
from structpose.files import write_text
from structpose.skeleton import H36M, H36M_JOINTS, NUM_JOINTS, root_relative
from structpose.viz import CENTRE, LEFT, RIGHT, limb_colour

#: The test sets a run's predictions hold, and the store split whose poses are their ground truth.
GT_SPLIT = {"test": "test", "occluded": "test", "truncated": "test", "unseen": "unseen"}

#: The plotly release the page was made and tested with (its plotly.js is inlined in every page).
PLOTLY_VERSION = "5.24.1"

_SCENES = ("scene", "scene2")
_COLOURS = (LEFT, RIGHT, CENTRE)
_MARKER = "#333333"


@dataclass(frozen=True)
class ViewInputs:
    """What a page shows.

    Attributes:
        pred: (N, 17, 3) float64 predicted poses, mm, camera frame, root-relative.
        gt: (N, 17, 3) float64 ground truth, mm, same order, or None when unknown.
        labels: one label per sample (N,).
        title: the page title (names the source; says why the ground truth is missing, when it is).
        note: why the ground truth is not shown ("" when it is, or when the input never has one).
    """

    pred: np.ndarray
    gt: np.ndarray | None
    labels: list[str]
    title: str
    note: str = ""


# --------------------------------------------------------------------------------------------- the page


def view_html(
    pred: np.ndarray, gt: np.ndarray | None = None, labels: list[str] | None = None, title: str = "structpose view"
) -> str:
    """The self-contained HTML page of ``pred`` (and ``gt`` beside it), one slider step per sample.

    Args:
        pred: (N, 17, 3) predicted poses, mm, camera frame (x right, y down, z forward), root-relative.
        gt: (N, 17, 3) ground-truth poses, mm, same frame and order, or None (one scene, no error shown).
        labels: N sample labels (default ``#0, #1, ...``); each slider step shows its label and, with
            ``gt``, the sample's MPJPE (``"LABEL: MPJPE 12.3 mm"``).
        title: the page's title.

    Returns:
        The page (UTF-8 text; plotly.js inlined: about 4.6 MB, plus about 4 kB per sample).

    Raises:
        InputError: a shape that is not (N, 17, 3) with N >= 1, ``gt`` or ``labels`` of another length
            than ``pred``, or a non-finite coordinate.
        ImportError: plotly is not installed (the message says how to install it).
    """
    pio = _plotly_io()
    pred = _checked_poses(pred, "pred")
    gt = None if gt is None else _checked_poses(gt, "gt")
    if gt is not None and gt.shape != pred.shape:
        raise InputError(f"gt has shape {gt.shape} but pred {pred.shape}: one ground truth per prediction")
    labels = [f"#{i}" for i in range(len(pred))] if labels is None else [str(s) for s in labels]
    if len(labels) != len(pred):
        raise InputError(f"{len(labels)} labels for {len(pred)} samples: give one label per sample")
    errors = sample_errors(pred, gt)
    steps = [_step_label(label, None if errors is None else errors[i]) for i, label in enumerate(labels)]
    half = _half_range(pred, gt)
    frames = [{"name": str(i), "data": _sample_traces(pred[i], None if gt is None else gt[i]),
               "traces": list(range(_n_traces(gt))), "layout": {"title": {"text": _heading(title, steps[i])}}}
              for i in range(len(pred))]  # fmt: skip
    fig = {"data": _styled(frames[0]["data"], gt is not None), "frames": frames,
           "layout": _layout(title, steps, half, gt is not None)}  # fmt: skip
    page = pio.to_html(fig, validate=False, include_plotlyjs=True, full_html=True, auto_play=False,
                       div_id="structpose-view", default_height="100vh", default_width="100%",
                       post_script=_sync_cameras(gt is not None),
                       config={"displaylogo": False, "responsive": True})  # fmt: skip
    head = f'<head><meta charset="utf-8" /><title>{html.escape(title)}</title><style>body {{margin: 0}}</style>'
    return page.replace('<head><meta charset="utf-8" />', head, 1)


def _plotly_io():
    """``plotly.io``, or an ImportError that says how to install it (the CLI prints it as one line)."""
    try:
        import plotly.io as pio
    except ImportError as err:
        raise ImportError(f"the HTML view needs plotly ({err}): pip install 'structpose[view]' "
                          f"(or pip install plotly=={PLOTLY_VERSION})") from err  # fmt: skip
    return pio


def sample_errors(pred: np.ndarray, gt: np.ndarray | None) -> np.ndarray | None:
    """Per-sample MPJPE (N,) mm of ``pred`` against ``gt`` (root-centred, no alignment), None without ``gt``."""
    from structpose.metrics import mpjpe

    return None if gt is None else np.asarray(mpjpe(pred, gt, reduce=False), dtype=np.float64)


def _checked_poses(poses: np.ndarray, what: str) -> np.ndarray:
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 3 or poses.shape[1:] != (NUM_JOINTS, 3) or len(poses) == 0:
        raise InputError(f"{what} must be poses (N, {NUM_JOINTS}, 3) mm with N >= 1, got shape {poses.shape}")
    if not np.isfinite(poses).all():
        bad = np.flatnonzero(~np.isfinite(poses).all(axis=(1, 2)))
        raise InputError(f"{what} has non-finite coordinates in {len(bad)} sample(s), the first #{bad[0]}")
    return poses


def _step_label(label: str, err: float | None) -> str:
    label = html.escape(label, quote=False)  # plotly reads a few HTML tags in text
    return label if err is None else f"{label}: MPJPE {err:.1f} mm"


def _heading(title: str, step: str) -> str:
    return f"{html.escape(title, quote=False)}<br><sup>{step}</sup>"


def _shown(pose: np.ndarray) -> np.ndarray:
    """Camera frame (17, 3) -> the scene's axes (x, depth z, up -y), a rotation: upright, not mirrored."""
    return pose[:, [0, 2, 1]] * np.array([1.0, 1.0, -1.0])


def _half_range(pred: np.ndarray, gt: np.ndarray | None) -> float:
    """Half the side (mm) of the cube, centred on the root, that holds every pose shown (plus 10%)."""
    points = pred if gt is None else np.concatenate([pred, gt])
    return max(float(np.abs(points - points[:, :1]).max()) * 1.1, 1.0)


def _n_traces(gt: np.ndarray | None) -> int:
    return (len(_COLOURS) + 1) * (1 if gt is None else 2)


def _sample_traces(pred: np.ndarray, gt: np.ndarray | None) -> list[dict]:
    """What changes from sample to sample: per scene, the coordinates of a line trace per bone colour and of
    one marker trace (joints, with their camera-frame coordinates and errors as ``customdata``)."""
    if gt is None:
        return _skeleton_coords(pred, np.full(NUM_JOINTS, np.nan))
    joint_err = np.linalg.norm(root_relative(pred) - root_relative(gt), axis=-1)
    return [*_skeleton_coords(pred, joint_err), *_skeleton_coords(gt, joint_err)]


def _skeleton_coords(pose: np.ndarray, joint_err: np.ndarray) -> list[dict]:
    shown = np.round(_shown(pose), 1)
    traces = []
    for colour in _COLOURS:
        xyz: list[list] = [[], [], []]
        for limb in (lb for lb in H36M.limbs if limb_colour(lb) == colour):
            for axis in range(3):
                xyz[axis] += [*shown[list(limb), axis].tolist(), None]
        traces.append({"type": "scatter3d", "x": xyz[0], "y": xyz[1], "z": xyz[2]})
    custom = np.round(np.column_stack([pose, joint_err]), 1)
    custom = np.where(np.isnan(custom), None, custom).tolist()  # JSON has no NaN
    traces.append({"type": "scatter3d", "x": shown[:, 0].tolist(), "y": shown[:, 1].tolist(),
                   "z": shown[:, 2].tolist(), "customdata": custom})  # fmt: skip
    return traces


def _styled(traces: list[dict], with_gt: bool) -> list[dict]:
    """The first sample's traces with what stays the same over samples: scene, colours, hover texts."""
    names = ("prediction", "ground truth") if with_gt else ("prediction",)
    per_scene = len(_COLOURS) + 1
    styled = []
    for k, trace in enumerate(traces):
        scene, name = _SCENES[k // per_scene], names[k // per_scene]
        common = {"scene": scene, "name": name, "showlegend": False}
        if k % per_scene < len(_COLOURS):
            line = {"color": _COLOURS[k % per_scene], "width": 6}
            styled.append({**trace, **common, "mode": "lines", "line": line, "hoverinfo": "skip"})
            continue
        err_line = "<br>error %{customdata[3]:.0f} mm" if with_gt else ""
        template = ("<b>%{hovertext}</b><br>camera x %{customdata[0]:.0f}, y %{customdata[1]:.0f}, "
                    "z %{customdata[2]:.0f} mm" + err_line + f"<extra>{name}</extra>")  # fmt: skip
        styled.append({**trace, **common, "mode": "markers", "marker": {"size": 3.5, "color": _MARKER},
                       "hovertext": list(H36M_JOINTS), "hovertemplate": template})  # fmt: skip
    return styled


def _scene(domain: tuple[float, float], half: float) -> dict:
    axis = {"range": [-half, half], "zeroline": False}
    return {"domain": {"x": list(domain), "y": [0.0, 0.94]}, "aspectmode": "cube",
            "xaxis": {**axis, "title": {"text": "x (mm)"}}, "yaxis": {**axis, "title": {"text": "depth z (mm)"}},
            "zaxis": {**axis, "title": {"text": "up −y (mm)"}},
            "camera": {"eye": {"x": 0.6, "y": -1.95, "z": 0.4}, "up": {"x": 0, "y": 0, "z": 1}}}  # fmt: skip


def _layout(title: str, steps: list[str], half: float, with_gt: bool) -> dict:
    domains = ((0.0, 0.49), (0.51, 1.0)) if with_gt else ((0.0, 1.0),)
    layout = {_SCENES[k]: _scene(d, half) for k, d in enumerate(domains)}
    names = ("prediction", "ground truth") if with_gt else ("prediction",)
    layout["annotations"] = [{"text": f"<b>{n}</b>", "x": sum(d) / 2, "y": 0.95, "xref": "paper", "yref": "paper",
                              "showarrow": False, "xanchor": "center", "yanchor": "bottom"}
                             for n, d in zip(names, domains, strict=True)]  # fmt: skip
    layout["title"] = {"text": _heading(title, steps[0]), "x": 0.5, "xanchor": "center"}
    layout["sliders"] = [_slider(steps)]
    layout["updatemenus"] = [_play_buttons()]
    layout |= {"template": _template(), "margin": {"l": 10, "r": 10, "t": 70, "b": 10}, "uirevision": "keep"}
    return layout


def _template() -> dict:
    return _plotly_io().templates["plotly_white"].to_plotly_json()


def _slider(steps: list[str]) -> dict:
    """One step per sample; with many samples the tick labels are hidden (the current one is shown above)."""
    many = len(steps) > 12
    return {"active": 0, "x": 0.08, "len": 0.9, "y": 0.0, "yanchor": "top", "pad": {"t": 30, "b": 10},
            "currentvalue": {"prefix": "", "visible": True, "xanchor": "left",
                             "font": {"size": 14, "color": "#222"}},
            "font": {"color": "rgba(0,0,0,0)" if many else "#444"}, "ticklen": 3 if many else 7,
            "steps": [{"label": s, "method": "animate",
                       "args": [[str(i)], {"mode": "immediate", "frame": {"duration": 0, "redraw": True},
                                           "transition": {"duration": 0}}]} for i, s in enumerate(steps)]}  # fmt: skip


def _play_buttons() -> dict:
    play = {"frame": {"duration": 400, "redraw": True}, "fromcurrent": True, "transition": {"duration": 0}}
    pause = {"mode": "immediate", "frame": {"duration": 0, "redraw": False}, "transition": {"duration": 0}}
    return {"type": "buttons", "direction": "left", "x": 0.0, "y": 0.0, "xanchor": "left", "yanchor": "top",
            "pad": {"t": 30, "b": 10}, "showactive": False,
            "buttons": [{"label": "▶", "method": "animate", "args": [None, play]},
                        {"label": "❚❚", "method": "animate", "args": [[None], pause]}]}  # fmt: skip


def _sync_cameras(with_gt: bool) -> str | None:
    """JavaScript run after the plot is drawn: rotating one scene rotates the other the same way."""
    if not with_gt:
        return None
    return """
    var gd = document.getElementById('{plot_id}');
    var syncing = false;
    gd.on('plotly_relayout', function (ev) {
      if (syncing) { return; }
      var src = ev['scene.camera'] ? 'scene' : (ev['scene2.camera'] ? 'scene2' : null);
      if (!src) { return; }
      var update = {};
      update[(src === 'scene' ? 'scene2' : 'scene') + '.camera'] = ev[src + '.camera'];
      syncing = true;
      Plotly.relayout(gd, update).then(function () { syncing = false; }, function () { syncing = false; });
    });"""


# ------------------------------------------------------------------------------------------- the inputs


def load_view_inputs(path: str | Path, method: str = "ours") -> ViewInputs:
    """Read what a page shows from a ``structpose predict`` or ``structpose reproduce`` output.

    Args:
        path: one of
            - a JSON of ``structpose predict`` (``poses_mm``: (17, 3) or (N, 17, 3) mm; optional
              ``joint_names``, in any order, and ``units``, which must be "mm");
            - a ``poses.npz`` of ``structpose predict`` (``poses`` (N, 17, 3) mm, optional ``names``), or the
              folder holding it;
            - a run folder of ``structpose reproduce`` (its lowest ``seed*/predictions.npz``), a seed folder
              (``predictions.npz`` beside ``config.yaml``) or such a ``predictions.npz``: the predictions of
              ``method``, with the ground truth of the split they were made on, read from the configuration's
              ``data.root`` (predictions only, and the title says why, when that store cannot be read).
        method: a method of the run ("ours", "cnn", "linkde", ...), on the "test" set, or "SET/METHOD"
            (e.g. "occluded/ours"). Not used for ``structpose predict`` outputs.

    Returns:
        The poses (mm), their labels and a title.

    Raises:
        InputError: ``path`` does not exist, is not one of the above, or the run has no ``method``.
        FormatError: a file that cannot be read as its format says (the message names it and the problem).
    """
    path = Path(path)
    if not path.exists():
        raise InputError("no such file or folder; give a predict JSON, a poses.npz or a reproduce run folder", path)
    if path.is_dir():
        if (path / "poses.npz").is_file() and not (path / "predictions.npz").is_file():
            return _predict_npz(path / "poses.npz")
        return _run_predictions(_predictions_file(path), method)
    if path.suffix.lower() == ".json":
        return _predict_json(path)
    if path.suffix.lower() == ".npz":
        arrays = _read_npz(path)
        if "poses" in arrays:
            return _predict_npz(path, arrays)
        if any("/" in k for k in arrays):
            return _run_predictions(path, method, arrays)
        raise FormatError(f"holds {sorted(arrays)}: neither 'poses' (structpose predict) nor 'SET/METHOD' "
                          f"arrays (structpose reproduce)", path)  # fmt: skip
    raise InputError("not a predict JSON, a poses.npz, a predictions.npz or a run folder", path)


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` (no pickles), read now, so a truncated member fails here."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, EOFError, ValueError, KeyError, OSError) as err:
        raise FormatError(f"cannot read this .npz ({type(err).__name__}: {err}); is it complete?", path) from err


def _poses_from(value: object, path: Path, what: str) -> np.ndarray:
    """(17, 3) or (N, 17, 3) numbers -> (N, 17, 3) float64, finite; FormatError naming ``path`` otherwise."""
    try:
        poses = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise FormatError(f"{what} is not an array of numbers ({err})", path) from err
    shape = poses.shape
    poses = poses[None] if poses.ndim == 2 else poses
    if poses.ndim != 3 or poses.shape[1:] != (NUM_JOINTS, 3) or len(poses) == 0:
        raise FormatError(f"{what} has shape {shape}; expected ({NUM_JOINTS}, 3) or (N, {NUM_JOINTS}, 3)", path)
    if not np.isfinite(poses).all():
        raise FormatError(f"{what} holds non-finite coordinates", path)
    return poses


def _predict_json(path: Path) -> ViewInputs:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FormatError(f"not valid JSON ({err})", path) from err
    if not isinstance(doc, dict) or "poses_mm" not in doc:
        raise FormatError("no 'poses_mm' in it: expected the JSON that `structpose predict` writes", path)
    if doc.get("units", "mm") != "mm":
        raise FormatError(f"units {doc['units']!r}: only 'mm' is read", path)
    poses = _poses_from(doc["poses_mm"], path, "'poses_mm'")
    poses = poses[:, _joint_order(doc.get("joint_names"), path)]
    name = next((str(doc[k]) for k in ("image", "name", "file") if isinstance(doc.get(k), str)), path.stem)
    labels = [Path(name).name] if len(poses) == 1 else [f"{Path(name).name} #{i}" for i in range(len(poses))]
    model = f" ({doc['model']})" if isinstance(doc.get("model"), str) else ""
    return ViewInputs(poses, None, labels, f"structpose predict{model}: {path.name}")


def _joint_order(names: object, path: Path) -> list[int]:
    """Indices that reorder a file's joints into :data:`~structpose.skeleton.H36M_JOINTS` order."""
    if names is None:
        return list(range(NUM_JOINTS))
    if not isinstance(names, list) or sorted(map(str, names)) != sorted(H36M_JOINTS):
        raise FormatError(f"'joint_names' {names!r} are not the 17 Human3.6M joints {list(H36M_JOINTS)}", path)
    return [names.index(j) for j in H36M_JOINTS]


def _predict_npz(path: Path, arrays: dict[str, np.ndarray] | None = None) -> ViewInputs:
    arrays = _read_npz(path) if arrays is None else arrays
    if "poses" not in arrays:
        raise FormatError(f"no 'poses' array in it (holds {sorted(arrays)})", path)
    poses = _poses_from(arrays["poses"], path, "'poses'")
    names = arrays.get("names")
    if names is not None and names.shape == (len(poses),):
        labels = [Path(str(n)).name for n in names]
    else:
        labels = [f"#{i}" for i in range(len(poses))]
    return ViewInputs(poses, None, labels, f"structpose predict: {path}")


def _predictions_file(run: Path) -> Path:
    """A run's (lowest seed's) or a seed folder's ``predictions.npz``."""
    if (run / "predictions.npz").is_file():
        return run / "predictions.npz"
    seeds = sorted(run.glob("seed*/predictions.npz"), key=lambda p: _seed_number(p.parent.name))
    if seeds:
        return seeds[0]
    per_action = sorted(run.glob("seed*/per_action/*/predictions.npz"))
    if per_action:
        raise InputError(f"a per-action run: view one action's folder, e.g. {per_action[0].parent}", run)
    raise InputError("holds no predictions.npz (in it or in seed*/): has a seed of this run finished?", run)


def _seed_number(name: str) -> int:
    digits = re.sub(r"\D", "", name)
    return int(digits) if digits else 0


def _run_predictions(path: Path, method: str, arrays: dict[str, np.ndarray] | None = None) -> ViewInputs:
    arrays = _read_npz(path) if arrays is None else arrays
    key = method if "/" in method else f"test/{method}"
    if key not in arrays:
        known = ", ".join(sorted(arrays))
        raise InputError(f"no predictions of {key!r}; it holds {known} (pass METHOD or SET/METHOD)", path)
    pred = _poses_from(arrays[key], path, repr(key))
    title = f"{_run_name(path)}: {key}"
    gt, meta, note = _ground_truth(path, key.split("/")[0], len(pred))
    if gt is None:
        return ViewInputs(pred, None, [f"#{i}" for i in range(len(pred))], f"{title} (no ground truth: {note})", note)
    labels = [f"#{i} {s} {a} frame {f}" for i, (s, a, f) in enumerate(zip(*meta, strict=True))]
    return ViewInputs(pred, gt, labels, title)


def _run_name(predictions: Path) -> str:
    folder = predictions.parent
    return f"{folder.parent.name}/{folder.name}" if folder.name.startswith("seed") else str(folder)


def _config_file(predictions: Path) -> Path | None:
    """The configuration nearest to a ``predictions.npz``: its folder's, else the run folder's."""
    for folder in (predictions.parent, predictions.parent.parent):
        if (folder / "config.yaml").is_file():
            return folder / "config.yaml"
    return None


def _ground_truth(predictions: Path, test_set: str, n: int) -> tuple[np.ndarray | None, tuple, str]:
    """The (n, 17, 3) mm ground truth of a run's predictions on ``test_set``, their (subject, action, frame)
    arrays, and "" — or (None, (), why not)."""
    from structpose.data.dataset import PoseImageDataset

    config = _config_file(predictions)
    if config is None:
        return None, (), f"no config.yaml beside {predictions} or in its parent"
    root, actions = _data_section(config)
    if root is None:
        return None, (), f"{config} names no data.root"
    if not root.exists() and not root.is_absolute() and (config.parent / root).exists():
        root = config.parent / root
    if not root.exists():
        return None, (), f"the data root {root} (data.root in {config}) is missing"
    split = GT_SPLIT.get(test_set, "test")
    try:
        ds = PoseImageDataset(root, split)
    except (StoreError, OSError) as err:
        return None, (), f"cannot read the data root {root} ({err})"
    if actions is not None and test_set != "unseen":
        ds = ds.subset(np.flatnonzero(np.isin(ds.action.astype(str), list(actions))))
    if len(ds) != n:
        return None, (), f"{root} has {len(ds)} {split} samples but the predictions {n}"
    return ds.poses3d.astype(np.float64), (ds.subject.astype(str), ds.action.astype(str), ds.frame), ""


def _data_section(config: Path) -> tuple[Path | None, list[str] | None]:
    """``data.root`` and ``data.actions`` of a run's ``config.yaml`` (read as plain YAML, no validation)."""
    import yaml

    try:
        tree = yaml.safe_load(config.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise FormatError(f"not valid YAML ({err})", config) from err
    data = tree.get("data") if isinstance(tree, dict) else None
    if not isinstance(data, dict) or not data.get("root"):
        return None, None
    actions = data.get("actions")
    return Path(str(data["root"])), None if actions is None else [str(a) for a in actions]


# ------------------------------------------------------------------------------------------------ write


def evenly_spaced(n: int, max_samples: int) -> np.ndarray:
    """Indices (int64, increasing) of at most ``max_samples`` of ``n`` samples, evenly spaced, first and last
    included."""
    if max_samples < 1:
        raise InputError(f"max_samples must be at least 1, got {max_samples}")
    if n <= max_samples:
        return np.arange(n, dtype=np.int64)
    return np.unique(np.linspace(0, n - 1, max_samples).round().astype(np.int64))


def default_out(src: str | Path) -> Path:
    """Where :func:`write_view` writes by default: ``FOLDER/view.html`` for a folder, ``FILE.html`` beside a
    file (``poses.npz`` -> ``poses.html``)."""
    src = Path(src)
    return src / "view.html" if src.is_dir() else src.with_suffix(".html")


def write_view(src: str | Path, out: str | Path | None = None, method: str = "ours", max_samples: int = 200) -> Path:
    """Write the page of ``src`` (see :func:`load_view_inputs`) to ``out`` atomically; returns ``out``.

    When the ground truth of a run cannot be shown, the page's title says why, and so does a warning (logged).

    Args:
        src: a ``structpose predict`` output or a ``structpose reproduce`` run folder.
        out: the HTML file (default :func:`default_out`).
        method: the run's method, or "SET/METHOD".
        max_samples: show at most this many samples, evenly spaced (the title gives the mean MPJPE of all
            of them and of those shown).

    Raises:
        InputError, FormatError: see :func:`load_view_inputs`.
        OSError: ``out`` cannot be written.
    """
    inputs = load_view_inputs(src, method)
    if inputs.note:
        logging.getLogger(__name__).warning("structpose view: ground truth not shown: %s", inputs.note)
    keep = evenly_spaced(len(inputs.pred), max_samples)
    gt = None if inputs.gt is None else inputs.gt[keep]
    title = inputs.title + _summary(inputs, keep)
    page = view_html(inputs.pred[keep], gt, [inputs.labels[i] for i in keep], title)
    return write_text(default_out(src) if out is None else out, page)


def _summary(inputs: ViewInputs, keep: np.ndarray) -> str:
    n = len(inputs.pred)
    shown = f"{len(keep)} of {n} samples" if len(keep) < n else f"{n} samples"
    if inputs.gt is None:
        return f", {shown}"
    err = sample_errors(inputs.pred, inputs.gt)
    if len(keep) < n:
        return f", {shown}, MPJPE {err.mean():.1f} mm (those shown: {err[keep].mean():.1f} mm)"
    return f", {shown}, MPJPE {err.mean():.1f} mm"
