"""``ddfa video INPUT --output OUT.mp4``: track, smooth and render every face of a video.

Writes the rendered video and ``OUT.jsonl`` (per-frame records, see :mod:`ddfa.video.process`).
A truncated or corrupt input keeps everything processed so far, says where it stopped and
exits with status 1; Ctrl-C does the same with status 130.
"""

from __future__ import annotations

import argparse
import sys

EPILOG = """\
examples:
  ddfa video clip.mp4 --output out/clip.mp4
  ddfa video clip.mp4 --output out/clip.mp4 --outputs 3d,pose --smooth offline --detect-every 5
  ddfa video clip.mp4 --records out/clip.jsonl --outputs none      # records only
  ddfa video 0 --output webcam.mp4 --max-frames 300               # webcam 0, causal smoothing

tracking: each face's next crop comes from its previous landmarks; the detector runs on the
first frame, every --detect-every frames, and whenever a track looks unsure (its crop moved or
rescaled too much, or it is leaving the frame). New faces get new ids (1, 2, ...); a face that
leaves the frame and comes back gets a new id.
"""


def register(subparsers) -> argparse.ArgumentParser:
    from ..render.outputs import image_output_names
    from ..video.smoothing import SmoothingOptions
    from ..video.tracker import TrackerOptions
    from .main import add_common_model_options

    smooth, track = SmoothingOptions(), TrackerOptions()
    parser = subparsers.add_parser(
        "video",
        help="track, smooth and render every face of a video or webcam",
        description="Detect, align and track every face of a video; write the rendered video and "
        "per-frame records (frame, time, track id, box, landmarks, pose) as JSON lines.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("input", metavar="INPUT",
                        help="video file (anything OpenCV or ffmpeg reads) or webcam index (0, 1, ...)")
    parser.add_argument("-o", "--output", metavar="OUT.mp4", default=None,
                        help="rendered video (.mp4, .avi, ...)")
    parser.add_argument("--records", metavar="PATH", default=None,
                        help="per-frame JSON-lines records (default: OUT.jsonl next to the video)")
    parser.add_argument("--no-records", action="store_true", help="write no records file")
    parser.add_argument(
        "--outputs", default="2d_sparse", metavar="LIST",
        help="comma-separated overlays drawn in order on each frame: the image outputs of `ddfa align` that "
        "draw on the photo (" + ", ".join(image_output_names()) + "; not texture atlases such as uv_tex); "
        "default: 2d_sparse; 'none': track ids only")
    parser.add_argument("--no-ids", action="store_true", help="do not label faces with their track id")
    group = parser.add_argument_group("tracking")
    group.add_argument("--detect-every", type=int, default=track.detect_every, metavar="N",
                       help=f"run the detector every N frames (1: every frame; 0: only when a track is unsure; "
                       f"default: {track.detect_every})")
    group.add_argument("--max-faces", type=int, default=None, metavar="N", help="follow at most N faces")
    group.add_argument("--refine", choices=("none", "flip", "full"), default="none",
                       help="test-time refinement of every tracked face; its calibrated confidence then also "
                       "decides when to re-run the detector (default: none)")
    group = parser.add_argument_group("smoothing")
    group.add_argument("--smooth", choices=("none", "causal", "offline"), default=None,
                       help="One-Euro smoothing of landmarks, pose and mesh: causal (no delay) or offline "
                       "(also looks ahead; default for files), none; default: offline for files, causal "
                       "for webcams")
    group.add_argument("--smooth-strength", type=float, default=smooth.strength, metavar="S",
                       help="2 smooths twice as much, 0.5 half as much (default: 1)")
    group.add_argument("--min-cutoff", type=float, default=smooth.min_cutoff, metavar="HZ",
                       help=f"cut-off of a still face in Hz (default: {smooth.min_cutoff:g})")
    group.add_argument("--beta", type=float, default=smooth.beta,
                       help=f"cut-off increase per face size/s of motion (default: {smooth.beta:g})")
    group.add_argument("--lookahead", type=int, default=smooth.lookahead, metavar="N",
                       help=f"future frames used by --smooth offline (default: {smooth.lookahead})")
    group = parser.add_argument_group("input/output")
    group.add_argument("--codec", choices=("auto", "mp4v", "mjpg", "h264"), default="auto",
                       help="output codec: auto (MJPG for .avi, else mp4v), or h264 via imageio-ffmpeg")
    group.add_argument("--max-frames", type=int, default=None, metavar="N", help="stop after N frames")
    group.add_argument("--fps", type=float, default=None,
                       help="frame rate for the frame times and the output (default: the input's)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_common_model_options(parser)
    parser.set_defaults(func=run)
    return parser


def run(args) -> int:
    from ..errors import InputError
    from ..pipeline import FaceAligner
    from ..video.io import VideoSource
    from ..video.process import process_video, video_output_names
    from ..video.smoothing import SmoothingOptions

    outputs = [] if args.outputs.strip() in ("", "none") else [s.strip() for s in args.outputs.split(",") if s.strip()]
    outputs = video_output_names(outputs)
    if args.output is None and (args.records is None or args.no_records):
        raise InputError("nothing to write: give --output OUT.mp4 and/or --records PATH")
    if args.no_records:
        records = None
    else:
        records = args.records if args.records is not None else "auto"
    source = VideoSource(args.input, fps=args.fps, max_frames=args.max_frames)
    mode = args.smooth or ("causal" if source.kind == "camera" else "offline")
    smoothing = SmoothingOptions(mode=mode, min_cutoff=args.min_cutoff, beta=args.beta,
                                 strength=args.smooth_strength, lookahead=args.lookahead)
    aligner = FaceAligner(model=args.model, detector=args.detector, assets=args.assets, device=args.device,
                          backend=args.backend, refine=args.refine)
    summary = process_video(source, args.output, records=records, aligner=aligner, outputs=outputs,
                            smoothing=smoothing, draw_ids=not args.no_ids, codec=args.codec,
                            progress=not args.quiet, detect_every=args.detect_every, max_faces=args.max_faces)
    written = [str(p) for p in (summary.output, summary.records) if p is not None]
    ids = [t["track_id"] for t in summary.tracks]
    print(f"ddfa video: {summary.frames} frame(s), {len(ids)} track(s)"
          + (f" (ids {ids[0]}-{ids[-1]})" if ids else "")
          + f", detector on {summary.detector_runs} frame(s), {summary.fps:.1f} frames/s; wrote {', '.join(written)}")
    if summary.interrupted:
        print(f"ddfa video: interrupted {summary.stopped_at()}; kept {summary.frames} frame(s)", file=sys.stderr)
        return 130
    if summary.problem:
        print(f"ddfa video: {source.name}: stopped {summary.stopped_at()}: {summary.problem}; "
              f"kept {summary.frames} frame(s)", file=sys.stderr)
        return 1
    return 0
