"""Command line: ``structpose data ...``, ``reproduce``, ``predict``, ``export`` and ``view``.

Heavy imports happen inside each command. :func:`main` is the one error boundary: the project's own errors
(:mod:`structpose.errors`), OS errors and missing optional packages become one line on stderr,
``structpose: error: PATH: what is wrong; what to do``, and exit code 1; ``--debug`` (or
``STRUCTPOSE_DEBUG=1``) shows the stack trace instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from structpose.errors import StructposeError

DEFAULT_DATA_ROOT = Path("../shared/data")
DEFAULT_SYNTH_DIR = Path("data/synth")


def _shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"--shard wants I/N (e.g. 0/4), got {text!r}") from err
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"--shard {text}: I must be in [0, N)")
    return i, n


def cmd_bodies(args: argparse.Namespace) -> int:
    import numpy as np

    from structpose.render.bodybank import build_body_bank, save_body_bank

    bank = build_body_bank(args.bodies, args.seed)
    path = save_body_bank(bank, args.out)
    stature = np.ptp(bank.vertices[:, :, 2], axis=1)
    print(
        f"wrote {path}: {len(bank)} bodies, {path.stat().st_size / 2**20:.2f} MiB, stature "
        f"{stature.min():.0f}-{stature.max():.0f} mm (median {np.median(stature):.0f})"
    )
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from structpose.data.synth import default_store_dir, resolve_preset, synthesize

    cfg = resolve_preset(
        args.preset,
        train_images=args.train_images,
        test_images=args.test_images,
        size=args.size,
        seed=args.seed,
        sources=tuple(args.sources.split(",")) if args.sources else None,
        protocol=args.protocol,
        unseen_images=args.unseen_images,
        renderer=args.renderer,
    )
    out = args.out or default_store_dir(args.preset, cfg.protocol, cfg.renderer)
    paths = synthesize(out, cfg, args.shard, args.pose_library, workers=args.workers, preset=args.preset)
    for p in paths:
        print(f"wrote {p}")
    if args.shard == (0, 1):
        from structpose.data.show import show_store

        print(f"wrote {show_store(out, Path(out) / 'samples.png')}")
    return 0


def cmd_mocap(args: argparse.Namespace) -> int:
    from structpose.data.poselib import build_pose_library

    build = build_pose_library(Path(args.data_root), Path(args.out) if args.out else None,
                               sources=tuple(args.sources.split(",")), fps=args.fps)  # fmt: skip
    print(f"wrote {build.path} ({build.sequences} sequences)")
    if build.left_out:
        print(f"structpose: error: {len(build.left_out)} takes could not be read and were left out (warnings above; "
              f"listed in {build.path.with_suffix('.txt')})", file=sys.stderr)  # fmt: skip
        return 1
    return 0


def cmd_own(args: argparse.Namespace) -> int:
    from structpose.data import read_mocap, render_poses

    take = read_mocap(args.file, rig=args.rig, fps=args.fps, amc=args.amc, source_fps=args.source_fps)
    name = take.path.stem
    path = render_poses(take.poses, args.out, split=args.split, size=args.size, seed=args.seed,
                        subject=args.subject or name, action=args.action, sequence=name,
                        source=f"{take.path} (rig {take.rig}, {take.fps:g} Hz)", workers=args.workers,
                        renderer=args.renderer)  # fmt: skip
    print(f"{path}: {len(take)} poses of {take.path} (rig {take.rig}, {take.fps:g} Hz)")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from structpose.data.show import show_store

    path = Path(args.path)
    out = args.out or (path / f"{args.split}_samples.png" if path.is_dir() else path.with_suffix(".png"))
    print(f"wrote {show_store(args.path, out, split=args.split, count=args.count, seed=args.seed)}")
    return 0


def cmd_samples(args: argparse.Namespace) -> int:
    from structpose.predict import write_samples

    written = write_samples(Path(args.store), Path(args.out), count=args.count, frames=args.frames, size=args.size,
                            seed=args.seed)  # fmt: skip
    print(f"wrote {len(written)} files into {args.out}: " + ", ".join(p.name for p in written))
    return 0


def cmd_h36m(args: argparse.Namespace) -> int:
    from structpose.data.h36m_import import import_h36m

    report = import_h36m(
        Path(args.root), Path(args.out), size=args.size, every=args.every, workers=args.workers,
        subjects=args.subjects.split(",") if args.subjects else None,
        actions=args.actions.split(",") if args.actions else None,
        margin=args.margin, keep_parts=args.keep_parts,
    )  # fmt: skip
    print(report.summary())
    if not report.imported:
        print(f"structpose: error: {args.root}: no sequence was imported (see the problems above)", file=sys.stderr)
        return 1
    return 0


def cmd_h36m_poses(args: argparse.Namespace) -> int:
    from structpose.data.h36m_poses import import_h36m_poses

    print(f"wrote {import_h36m_poses(Path(args.src), Path(args.out), every=args.every)}")
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    if args.input == "keypoints2d":
        return _reproduce_lift(args)
    from structpose.reproduce import reproduce

    run_dir = reproduce(
        preset=args.preset,
        data=Path(args.data) if args.data else None,
        out=Path(args.out) if args.out else None,
        overrides=[*_renderer_overrides(args), *args.set],
        resume=args.resume,
        ablations=None if args.ablations is None else [k for k in args.ablations.split(",") if k],
        seeds=args.seeds,
        per_action=args.per_action,
    )
    for label, name in (("report", "report.md"), ("ablation table", "ablations.md")):  # methods=[]: no report
        if (run_dir / name).is_file():
            print(f"{label}: {run_dir / name}")
    return 0


def _renderer_overrides(args: argparse.Namespace) -> list[str]:
    """``--renderer R`` as config overrides: ``data.renderer=R`` and, unless ``--data`` or a ``data.root``
    override names the store, the preset's default store of that renderer."""
    if args.renderer is None:
        return []
    out = [f"data.renderer={args.renderer}"]
    if args.data is None and not any(s.startswith("data.root=") for s in args.set):
        from structpose.data.protocol import DEFAULT_PROTOCOL
        from structpose.data.synth import default_store_dir

        protocol = next((s.split("=", 1)[1] for s in args.set if s.startswith("data.protocol=")), DEFAULT_PROTOCOL)
        out.append(f"data.root={default_store_dir(args.preset, protocol, args.renderer)}")
    return out


def _reproduce_lift(args: argparse.Namespace) -> int:
    """``reproduce --input keypoints2d``: the lifting experiment (:mod:`structpose.lift.run`)."""
    from structpose.errors import InputError
    from structpose.lift.run import reproduce_lift

    if args.ablations is not None or args.per_action:
        raise InputError("--input keypoints2d trains on the pose library's views: --ablations and --per-action are "
                         "for the image experiment")  # fmt: skip
    overrides = [*args.set, *([f"data.test_store={Path(args.data).resolve()}"] if args.data else [])]
    run_dir = reproduce_lift(args.preset, Path(args.out) if args.out else None, overrides, args.resume, args.seeds)
    print(f"report: {run_dir / 'report.md'}")
    return 0


def _box(text: str) -> tuple[float, float, float, float]:
    try:
        x, y, w, h = (float(v) for v in text.split(","))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"--box wants x,y,w,h in pixels (e.g. 120,40,200,380), got {text!r}") from err
    if not (w > 0 and h > 0):
        raise argparse.ArgumentTypeError(f"--box {text}: w and h must be > 0")
    return x, y, w, h


def cmd_predict(args: argparse.Namespace) -> int:
    if args.run:
        return _predict_run(args)
    from structpose.errors import InputError
    from structpose.predict import predict_inputs
    from structpose.release import load

    if args.onnx:
        raise InputError("--onnx exports a run's network with --run; to run ONNX, pass --backend onnx with a "
                         "model folder exported with `structpose export RUN --onnx`")  # fmt: skip
    model = load(Path(args.model) if args.model else _shipped_lifter(), method=args.method, backend=args.backend,
                 device=args.device)  # fmt: skip
    if model.card["input"].get("kind") == "keypoints2d":
        return _predict_lifted(model, args)
    done = predict_inputs(model, [Path(p) for p in args.inputs], Path(args.out), boxes=args.box,
                          batch_size=args.batch_size, video_format=args.video_format)  # fmt: skip
    for line in done.problems:
        print(f"skipped {line}", file=sys.stderr)
    if done.written:
        print(f"wrote {len(done.written)} files into {args.out}: " + ", ".join(p.name for p in done.written))
    return 1 if done.problems else 0


def _shipped_lifter() -> Path:
    """The lifter inside the package (``structpose/assets/lifter``): ``predict`` without ``--model``."""
    from importlib import resources

    from structpose.errors import InputError

    folder = Path(str(resources.files("structpose.assets") / "lifter"))
    if not (folder / "model.json").is_file():
        raise InputError("this installation ships no default lifter: give --model PATH (a model folder written by "
                         "`structpose export`, or a run folder with --method)")  # fmt: skip
    return folder


def _predict_lifted(model, args: argparse.Namespace) -> int:
    """A lifter: detect the 2D keypoints of each photo or video frame (or read a keypoint JSON), lift them."""
    from structpose.lift.photo import predict_lifted

    if args.box:
        from structpose.errors import InputError

        raise InputError("--box is for image models; a lifter finds the person with the detector")
    done = predict_lifted(model, [Path(p) for p in args.inputs], Path(args.out), python=args.detector_python,
                          video_format=args.video_format)  # fmt: skip
    for line in done.problems:
        print(f"skipped {line}", file=sys.stderr)
    if done.written:
        print(f"wrote {len(done.written)} files into {args.out}: " + ", ".join(p.name for p in done.written))
    return 1 if done.problems else 0


def _predict_run(args: argparse.Namespace) -> int:
    """``--run RUN``: a run's network on person-centred crops, into poses.npz and poses.png (as before)."""
    from structpose.errors import InputError
    from structpose.predict import predict_images

    if args.box or args.backend != "torch":
        raise InputError("--run takes person-centred crops with PyTorch; for --box or --backend onnx, pass "
                         "--model (a folder written by `structpose export`)")  # fmt: skip
    if args.model not in (None, "ours", "cnn", "ours_noft"):
        raise InputError(f"with --run, --model is the run's network: ours, cnn or ours_noft, not {args.model!r}")
    out, problems = predict_images(Path(args.run), [Path(p) for p in args.inputs], Path(args.out),
                                   model=args.model or "ours", onnx=args.onnx)  # fmt: skip
    for line in problems:
        print(f"skipped {line}", file=sys.stderr)
    print(f"wrote {out / 'poses.npz'} and {out / 'poses.png'}")
    return 1 if problems else 0


def cmd_export(args: argparse.Namespace) -> int:
    if args.model.startswith("lift_"):
        from structpose.lift.release import export_lifter

        out = export_lifter(Path(args.run), args.model, Path(args.out) if args.out else None, half=args.half)
        print(f"wrote {out} ({', '.join(sorted(p.name for p in out.iterdir() if not p.name.startswith('.')))})")
        return 0
    from structpose.release import export_model

    out = export_model(Path(args.run), args.model, Path(args.out) if args.out else None, onnx=args.onnx)
    print(f"wrote {out} ({', '.join(sorted(p.name for p in out.iterdir() if not p.name.startswith('.')))})")
    return 0


def cmd_ablations(args: argparse.Namespace) -> int:
    from structpose.ablations import write_grid

    out = write_grid([Path(p) for p in args.grids], Path(args.out))
    print(f"wrote {out}")
    return 0


def cmd_regimes(args: argparse.Namespace) -> int:
    from structpose.report import write_regime_figure

    print(f"wrote {write_regime_figure(Path(args.results), Path(args.out), args.a, args.b)}")
    return 0


def cmd_view(args: argparse.Namespace) -> int:
    from structpose.view import write_view

    out = write_view(Path(args.src), Path(args.out) if args.out else None, method=args.method,
                     max_samples=args.max_samples)  # fmt: skip
    print(f"wrote {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="structpose", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="show Lightning's informational messages")
    parser.add_argument("--debug", action="store_true", help="show the stack trace of an error (or STRUCTPOSE_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True)

    data_parser = sub.add_parser("data", help="build, import and look at datasets")
    data = data_parser.add_subparsers(dest="data_cmd", required=True)
    p = data.add_parser("bodies", help="rebuild the mesh renderer's body bank from anny (pip install "
                                       "'structpose[bodies]')")  # fmt: skip
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        help="the .npz to write (the shipped one: structpose/assets/bodies_v1.npz, 128 bodies, seed 0)",
    )
    p.add_argument("--bodies", type=int, default=128, help="how many bodies (body i depends on the seed and i only)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_bodies)

    p = data.add_parser("synth", help="render the embedded default dataset from the shipped pose library")
    p.add_argument("--preset", default="quick", help="quick (64 px, default), paper (128 px) or tiny")
    p.add_argument("--out", type=Path, help=f"dataset directory (default {DEFAULT_SYNTH_DIR}/PRESET-PROTOCOL[-mesh])")
    p.add_argument("--shard", type=_shard, default=(0, 1), metavar="I/N", help="render only part I of N (job arrays)")
    p.add_argument("--train-images", type=int)
    p.add_argument("--test-images", type=int)
    p.add_argument("--unseen-images", type=int, help="images of the unseen-motions test split (protocol v2)")
    p.add_argument("--protocol", choices=["v1", "v2"], help="benchmark protocol (default v2; see the README)")
    p.add_argument(
        "--renderer",
        choices=["capsule", "mesh"],
        help="capsule people (numpy ray casting) or mesh people (anny bodies, OpenGL); see the README",
    )
    p.add_argument("--size", type=int, help="crop side in pixels")
    p.add_argument("--seed", type=int)
    p.add_argument("--sources", help="comma-separated: cmu,bandai (default both; 'cmu' for a CMU-only set)")
    p.add_argument("--pose-library", type=Path, help="a pose library .npz (default: the shipped one)")
    p.add_argument("--workers", type=int, default=2, help="render processes")
    p.set_defaults(func=cmd_synth)

    p = data.add_parser("mocap", help="rebuild the pose library from the mocap files")
    p.add_argument("--data-root", default=str(DEFAULT_DATA_ROOT), help="folder holding the mocap sources")
    p.add_argument("--out", help="output .npz (default ./poselib_v1.npz; never the package's assets/)")
    p.add_argument("--sources", default="cmu,bandai")
    p.add_argument("--fps", type=float, default=20.0)
    p.set_defaults(func=cmd_mocap)

    p = data.add_parser("own", help="render your own mocap file (.bvh, or .asf + --amc) as a test split")
    p.add_argument("file", type=Path, help="a .bvh file, or an .asf skeleton (then --amc)")
    p.add_argument("--out", type=Path, required=True, help="dataset directory (receives SPLIT.h5)")
    p.add_argument("--amc", type=Path, help="the .amc motion of an .asf skeleton")
    p.add_argument("--rig", help="cmu, bandai, cmu_daz, cmu_max, cmu_asf, cmu_amc2bvh (default: detected)")
    p.add_argument("--fps", type=float, default=20.0, help="resample to this rate (Hz; the pose library's is 20)")
    p.add_argument("--source-fps", type=float, help="the file's true rate, where its header is wrong")
    p.add_argument("--split", default="test", choices=["test", "train", "unseen"])
    p.add_argument("--size", type=int, default=64, help="crop side in pixels (the trained network's input size)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--subject", help="subject label (default: the file's name)")
    p.add_argument("--action", default="own", help="action label (reports group by it)")
    p.add_argument("--workers", type=int, default=2, help="render processes")
    p.add_argument(
        "--renderer",
        default="mesh",
        choices=["mesh", "capsule"],
        help="mesh people (default, as the embedded default) or capsules: as the model was trained on",
    )
    p.set_defaults(func=cmd_own)

    p = data.add_parser("show", help="PNG grid of samples with their 2D skeletons and one 3D pose")
    p.add_argument("path", help="dataset directory or one .h5 file")
    p.add_argument("--split", default="train")
    p.add_argument("--out", type=Path)
    p.add_argument("--count", type=int, default=18)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_show)

    p = data.add_parser("samples", help="held-out inputs to try `structpose predict` on: test crops as PNG files "
                                        "and a short clip of a held-out sequence, with their ground truth")  # fmt: skip
    p.add_argument("store", help="a dataset directory, e.g. data/synth/quick-v2-mesh")
    p.add_argument("--out", default="samples", help="the folder to write (default ./samples)")
    p.add_argument("--count", type=int, default=4, help="test crops")
    p.add_argument("--frames", type=int, default=48, help="frames of the clip at 20 per second (0: no clip)")
    p.add_argument("--size", type=int, default=128, help="the clip's side, px")
    p.add_argument("--seed", type=int, default=0, help="draws the clip's sequence, camera and appearance")
    p.set_defaults(func=cmd_samples)

    p = data.add_parser("h36m", help="import the official Human3.6M release (poses, videos, cameras)")
    p.add_argument("--root", required=True, help="folder holding S1, S5, ... as downloaded")
    p.add_argument("--out", required=True, help="dataset directory to write")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--every", type=int, default=5, help="keep every N-th frame (5: 10 fps)")
    p.add_argument("--workers", type=int, default=2, help="parallel processes (0: in this process)")
    p.add_argument("--subjects", help="comma-separated subset, e.g. S1,S9 (default: all seven)")
    p.add_argument("--actions", help="comma-separated subset of the 15 actions (default: all)")
    p.add_argument("--margin", type=float, default=0.2, help="relative margin of the person box")
    p.add_argument("--keep-parts", action="store_true", help="keep the per-sequence parts after merging")
    p.set_defaults(func=cmd_h36m)

    p = data.add_parser("h36m-poses", help="import Human3.6M 3D poses only (CDF tree or data_3d_h36m.npz)")
    p.add_argument("src", help="the release folder (CDF tree) or VideoPose3D's data_3d_h36m.npz")
    p.add_argument("--out", required=True)
    p.add_argument("--every", type=int, default=1, help="keep every N-th frame")
    p.set_defaults(func=cmd_h36m_poses)

    p = sub.add_parser("reproduce", help="train and evaluate the paper's models and baselines; write a report")
    p.add_argument("--preset", default="quick", help="quick (default, ~20 min on 2 CPU cores), paper, tiny")
    p.add_argument("--data", help="dataset directory (default: the embedded default, rendered if missing)")
    p.add_argument("--out", help="run folder (must not exist; default runs/PRESET-TIMESTAMP)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override, repeatable")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--ablations", nargs="?", const="", default=None, metavar="KEYS",
                   help="also run the ablation table (2+ seeds): all settings, or comma-separated keys of "
                        "preset,ae2,width500,lam0,lam1,sigma0,data5,data20")  # fmt: skip
    p.add_argument("--seeds", type=int, default=None, help="number of seeds per model (spread reported)")
    p.add_argument("--per-action", action="store_true", help="one model per action, as the paper trained")
    p.add_argument("--renderer", choices=["capsule", "mesh"],
                   help="who is in the embedded default's images (default: the preset's; sets data.renderer and "
                        "the store it renders into, data/synth/PRESET-v2[-mesh])")  # fmt: skip
    p.add_argument("--input", default="images", choices=["images", "keypoints2d"],
                   help="images (the paper's experiment) or keypoints2d (lifting 2D keypoints through the pose "
                        "prior; presets quick, tiny of structpose/configs/lift)")  # fmt: skip
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("predict", help="3D poses of the people in your images and videos, with a trained model")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image or video files (.mp4, .avi, .mov, .mkv, "
                                                              ".webm, animated .gif)")  # fmt: skip
    p.add_argument("--model", help="a model folder written by `structpose export` (or a run folder, with "
                                   "--method); default: the lifter shipped in the package (photos and videos "
                                   "of real people, through the 2D detector); with --run: the run's network, "
                                   "ours (default) or cnn")  # fmt: skip
    p.add_argument("--method", default="ours", help="the method of a run folder given as --model (ours, cnn, ...)")
    p.add_argument("--box", type=_box, action="append", metavar="X,Y,W,H",
                   help="the person's box in pixels (default: each image is a person-centred crop); once for "
                        "every input, or once per input")  # fmt: skip
    p.add_argument("--backend", default="torch", choices=["torch", "onnx"],
                   help="PyTorch, or onnxruntime on the folder's model.onnx")  # fmt: skip
    p.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: CUDA when available)")
    p.add_argument("--batch-size", type=int, default=64, help="crops per forward pass")
    p.add_argument("--video-format", default="mp4", choices=["mp4", "gif"], help="what a video's picture is")
    p.add_argument("--out", default="predictions", help="the output folder (per image NAME.json and NAME.png, "
                                                        "per video NAME.json, NAME.npz and NAME.mp4)")  # fmt: skip
    p.add_argument("--run", help="as before: a run folder of `structpose reproduce`, its network on "
                                 "person-centred crops, into poses.npz and poses.png")  # fmt: skip
    p.add_argument("--onnx", action="store_true", help="with --run: also export the network as ONNX into --out")
    p.add_argument("--detector-python", help="with a lifter: the Python that runs the 2D detector (default: "
                                             "$STRUCTPOSE_DETECTOR_PYTHON, .venv-detect/, or this one if it "
                                             "has mediapipe; `make detector` makes .venv-detect)")  # fmt: skip
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("export", help="a run's trained method as a model folder (model.safetensors + model.json)")
    p.add_argument("run", help="a run folder of `structpose reproduce` (or one of its seedN/ folders)")
    p.add_argument("--out", help="the model folder (default RUN/models/METHOD)")
    p.add_argument("--model", default="ours", help="the method: ours (default), cnn, ours_noft, linkde_knn, ...")
    p.add_argument("--onnx", action="store_true", help="also write model.onnx (networks only)")
    p.add_argument("--half", action="store_true", help="lifters (lift_ours, lift_direct): float16 weights")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("ablations", help="one regime table and figure from the grids of several runs "
                                         "(their ablations.json, or the copies under results/)")  # fmt: skip
    p.add_argument("grids", nargs="+", metavar="GRID", help="ablations.json files of one benchmark version and "
                                                             "base configuration; a setting is taken from the "
                                                             "first file that has it")  # fmt: skip
    p.add_argument("--out", default="ablations", help="the folder of ablations.md and ablations.png")
    p.set_defaults(func=cmd_ablations)

    p = sub.add_parser("regimes", help="the report's figure of OURS-FT / CNN per test set (95% CI over seeds), "
                                       "redrawn from a results.json, e.g. a copy under results/")  # fmt: skip
    p.add_argument("results", help="a run's results.json (or its copy under results/)")
    p.add_argument("--out", default="regimes.png", help="the PNG file (default regimes.png)")
    p.add_argument("--a", default="ours", help="numerator method (default ours: OURS with fine-tuning)")
    p.add_argument("--b", default="cnn", help="denominator method (default cnn: the direct CNN)")
    p.set_defaults(func=cmd_regimes)

    p = sub.add_parser("view", help="one self-contained interactive HTML page of predicted (and true) 3D poses")
    p.add_argument("src", help="a `structpose reproduce` run folder (or its seedN/ or a predictions.npz), or a "
                               "`structpose predict` output (poses.npz, its folder, or a per-image JSON)")  # fmt: skip
    p.add_argument("--out", help="the HTML file (default: SRC/view.html for a folder, SRC with .html for a file)")
    p.add_argument("--method", default="ours", help="the run's method (ours, cnn, linkde, ...) or SET/METHOD, "
                                                    "e.g. occluded/ours")  # fmt: skip
    p.add_argument("--max-samples", type=int, default=200, help="show at most this many samples, evenly spaced")
    p.set_defaults(func=cmd_view)
    return parser


def error_line(err: BaseException) -> str:
    """The one line the CLI prints for an error: ``PATH: what is wrong; what to do`` (and how to go on)."""
    if isinstance(err, OSError) and err.filename is not None:
        text = f"{err.filename}: {err.strerror or err}"
    elif isinstance(err, OSError) and err.strerror:
        text = err.strerror
    else:
        text = str(err) or type(err).__name__
    hint = getattr(err, "resume_hint", None)
    return " ".join((f"{text}; {hint}" if hint else text).split())


def _debug(args: argparse.Namespace) -> bool:
    return args.debug or os.environ.get("STRUCTPOSE_DEBUG", "") not in ("", "0")


def main(argv: list[str] | None = None) -> int:
    """Run the command of ``argv`` (default ``sys.argv[1:]``); returns its exit code (0 success, 1 failure,
    130 interrupted; argparse exits with 2 on a bad command line)."""
    args = build_parser().parse_args(argv)
    if not args.verbose:  # Lightning's per-stage banners and tips; progress bars and warnings stay
        import logging

        for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda"):
            logging.getLogger(name).setLevel(logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except (StructposeError, OSError, ImportError) as err:
        if _debug(args):
            raise
        print(f"structpose: error: {error_line(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as err:
        if _debug(args):
            raise
        hint = getattr(err, "resume_hint", "")
        print(f"structpose: interrupted{'; ' + hint if hint else ''}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
