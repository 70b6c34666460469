"""Command line: ``mediadecode info|frames|index|backends|encode-sample`` (also ``python -m
mediadecode``).

- ``mediadecode info [FILE]``: container, streams and the numbers an ML user needs (frames, fps,
  duration, size, rotation, sample rate...).
- ``mediadecode frames [FILE] --at 0,10,20 -o sheet.png``: a contact sheet PNG of those frames with
  each frame's index and pts written under it; ``--resize 224`` (shorter side to 224, aspect
  kept, as ``torchvision.transforms.v2.Resize(224)``) or ``--resize 224x320`` (height x width)
  and ``--crop 224`` / ``--crop 224x200`` (a centre crop) decode them through the decoder's
  ``transforms=`` (:mod:`mediadecode.transforms`), resize first.
- ``mediadecode index FILE > frames.json``: the exact-mode frame index of a video stream (from
  our packet scan, no decoding) as ffprobe's ``-show_frames -of json`` writes it, for
  ``VideoDecoder(..., custom_frame_mappings="frames.json")`` (torchcodec 0.17 reads it too).
- ``mediadecode backends``: every registered backend, available or not and why, and its
  capabilities (devices, media types, source kinds, seek modes, codecs, pixel tolerance).
- ``mediadecode encode-sample OUT.mp4``: encode a short generated clip (video and a tone) with
  :mod:`mediadecode.encoders`, decode it back and print the round trip (frame count, pts, PSNR).

Given no FILE, ``info`` and ``frames`` first make a short sample clip (H.264 video with the frame
number drawn in, and an AAC sine tone, encoded with PyAV), so they run on a fresh machine.
FILE may be a URL (``http(s)://``, ``s3://``, any fsspec URL; ``--storage-options JSON`` for
credentials and endpoints, ``--timeout`` seconds); the bytes transferred are printed.
``--allow-playlists`` lets FFmpeg open playlist-type formats (HLS, ffconcat) of trusted local files.
Errors print one line on stderr and exit with status 1 (2 for bad usage); no traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

__all__ = ["main", "make_sample_clip", "contact_sheet"]


def make_sample_clip(path: str | os.PathLike, *, seconds: float = 2.0, fps: int = 30,
                     width: int = 320, height: int = 240) -> Path:
    """Encode a short sample clip with PyAV: H.264 (yuv420p, B-frames, GOP 15) in MP4 with the
    frame number drawn into each frame, plus a 440 Hz stereo AAC tone at 48 kHz.

    Returns the path. Raises :class:`OSError` when the file cannot be written.
    """
    import av
    import numpy as np
    from PIL import Image, ImageDraw

    path = Path(path)
    n = int(round(seconds * fps))
    font = _font(max(12, height // 5))
    tmp = path.with_name(path.name + ".part")
    try:
        with av.open(str(tmp), mode="w", format="mp4") as out:
            v = out.add_stream("libx264", rate=fps)
            v.width, v.height, v.pix_fmt = width, height, "yuv420p"
            v.options = {"bf": "2", "g": "15", "preset": "veryfast"}
            a = out.add_stream("aac", rate=48000, layout="stereo")
            yy, xx = np.mgrid[0:height, 0:width]
            for i in range(n):
                rgb = np.zeros((height, width, 3), np.uint8)
                rgb[..., 0] = (xx * 255 // max(1, width - 1)).astype(np.uint8)
                rgb[..., 1] = (yy * 255 // max(1, height - 1)).astype(np.uint8)
                rgb[..., 2] = (i * 255 // max(1, n - 1))
                image = Image.fromarray(rgb)
                ImageDraw.Draw(image).text((width // 10, height // 3), f"#{i}", fill=(255, 255, 255), font=font)
                frame = av.VideoFrame.from_image(image)
                frame.pts = i
                frame.time_base = Fraction(1, fps)
                for packet in v.encode(frame):
                    out.mux(packet)
            for packet in v.encode():
                out.mux(packet)
            rate, chunk = 48000, 1024
            total = int(seconds * rate)
            for start in range(0, total, chunk):
                t = (np.arange(start, min(total, start + chunk)) / rate).astype(np.float32)
                tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
                frame = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp", layout="stereo")
                frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
                for packet in a.encode(frame):
                    out.mux(packet)
            for packet in a.encode():
                out.mux(packet)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font
        return ImageFont.load_default()


def contact_sheet(frames, captions: list[str], path: str | os.PathLike, *, columns: int = 4,
                  thumb_width: int = 320) -> Path:
    """Write a PNG grid of ``frames`` (``(N, 3, H, W)`` uint8) with a caption under each.

    The file is written next to ``path`` under a temporary name and renamed into place, so a
    failure never leaves a partial PNG. Returns the path.
    """
    from PIL import Image, ImageDraw

    path = Path(path)
    n = len(captions)
    thumbs = []
    for k in range(n):
        image = Image.fromarray(frames[k].permute(1, 2, 0).contiguous().numpy())
        scale = min(1.0, thumb_width / image.width)
        if scale < 1.0:
            image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
        thumbs.append(image)
    cols = max(1, min(columns, n))
    rows = (n + cols - 1) // cols
    cell_w = max(t.width for t in thumbs) + 16
    caption_h = 28
    cell_h = max(t.height for t in thumbs) + caption_h + 16
    sheet = Image.new("RGB", (cols * cell_w, rows * cell_h), (32, 32, 32))
    draw = ImageDraw.Draw(sheet)
    font = _font(14)
    for k, (thumb, caption) in enumerate(zip(thumbs, captions)):
        x, y = (k % cols) * cell_w + 8, (k // cols) * cell_h + 8
        sheet.paste(thumb, (x, y))
        draw.text((x, y + thumb.height + 6), caption, fill=(240, 240, 240), font=font)
    tmp = path.with_name(f".{path.name}.part")
    try:
        sheet.save(tmp, format="PNG")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _sample_if_missing(file: str | None) -> str:
    if file:
        return file
    folder = Path(tempfile.gettempdir()) / "mediadecode-sample"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "sample.mp4"
    if path.exists():
        print(f"no FILE given: using the sample clip at {path}")
    else:
        make_sample_clip(path)
        print(f"no FILE given: made a sample clip at {path}")
    return str(path)


def _fmt(value, unit: str = "", digits: int = 3) -> str:
    if value is None:
        return "?"
    if isinstance(value, float):
        return f"{value:.{digits}f}{unit}"
    return f"{value}{unit}"


def _source_options(args) -> dict:
    """storage_options / timeout / allow_playlists keyword arguments from the command line."""
    import json

    options: dict = {"allow_playlists": bool(args.allow_playlists)}
    if args.storage_options:
        try:
            value = json.loads(args.storage_options)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--storage-options is not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise ValueError("--storage-options must be a JSON object")
        options["storage_options"] = value
    if args.timeout is not None:
        options["timeout"] = args.timeout
    return options


def _print_read_stats(stats: dict, source_name: str) -> None:
    if stats.get("bytes_read") is None:
        return
    print(f"bytes read: {stats['bytes_read']} in {stats['read_calls']} range requests "
          f"({stats['retries']} retried) from {source_name}")


def _cmd_info(args) -> int:
    import mediadecode as md

    file = _sample_if_missing(args.file)
    opts = _source_options(args)
    container = md.get_container_metadata(file, **opts)
    from .sources import as_source

    print(f"{as_source(file).name}")  # a URL is shown with credentials redacted
    print(f"  format: {container.format_name}  duration: {_fmt(container.duration_seconds_from_header, ' s')}"
          f"  bit rate: {_fmt(container.bit_rate_from_header)}")
    print(f"  best video stream: {container.best_video_stream_index}  "
          f"best audio stream: {container.best_audio_stream_index}")
    for s in container.streams:
        if s.media_type == "video":
            with md.VideoDecoder(file, stream_index=s.stream_index, seek_mode=args.seek_mode,
                                 backend=args.backend, **opts) as dec:
                m = dec.metadata
                print(f"  stream {s.stream_index}: video {m.codec} {m.width}x{m.height} "
                      f"{m.num_frames} frames, {_fmt(m.average_fps, ' fps')}, "
                      f"{_fmt(m.duration_seconds, ' s')} [{_fmt(m.begin_stream_seconds)}, "
                      f"{_fmt(m.end_stream_seconds)}) s, {m.pixel_format}, "
                      f"colour {m.color_space or '?'}/{m.color_range or '?'}, "
                      f"rotation {m.rotation if m.rotation is not None else 'none'} "
                      f"(backend {dec.backend}, seek_mode {args.seek_mode})")
        elif s.media_type == "audio":
            with md.AudioDecoder(file, stream_index=s.stream_index, backend=args.backend,
                                 **opts) as dec:
                m = dec.metadata
                print(f"  stream {s.stream_index}: audio {m.codec} {m.sample_rate} Hz, "
                      f"{m.num_channels} channels, {m.sample_format}, "
                      f"{_fmt(m.duration_seconds, ' s')} (backend {dec.backend})")
        else:
            print(f"  stream {s.stream_index}: {s.media_type} {s.codec or ''}")
    return 0


def _parse_indices(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--at wants comma-separated frame indices, got {text!r}") from None


def _parse_size(text: str) -> tuple[int, ...]:
    """``"224"`` -> ``(224,)``; ``"224x320"`` -> ``(224, 320)`` (height x width)."""
    try:
        size = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        size = ()
    if len(size) not in (1, 2) or min(size) <= 0:
        raise argparse.ArgumentTypeError(f"expected N or HxW (positive ints), got {text!r}")
    return size


def _frame_transforms(args, open_decoder) -> list:
    """``--resize`` then ``--crop`` as :mod:`mediadecode.transforms` objects. A single resize
    number is the shorter side (torchvision's rule: ``int(long * size / short)``), computed
    from the rotated source size."""
    from .transforms import CenterCrop, Resize

    out = []
    if args.resize:
        size = args.resize
        if len(size) == 1:
            with open_decoder() as probe:
                h, w = int(probe.metadata.height), int(probe.metadata.width)
            short, long = (h, w) if h <= w else (w, h)
            other = int(size[0] * long / short)
            size = (size[0], other) if h <= w else (other, size[0])
        out.append(Resize(size))
    if args.crop:
        out.append(CenterCrop(args.crop * 2 if len(args.crop) == 1 else args.crop))
    return out


def _cmd_frames(args) -> int:
    import mediadecode as md

    file = _sample_if_missing(args.file)

    def open_decoder(**extra):
        return md.VideoDecoder(file, stream_index=args.stream_index, seek_mode=args.seek_mode,
                               backend=args.backend, **_source_options(args), **extra)

    transforms = _frame_transforms(args, open_decoder)
    with open_decoder(transforms=transforms or None) as dec:
        indices = args.at if args.at else [0, len(dec) // 2, len(dec) - 1]
        batch = dec.get_frames_at(indices)
        n_frames = len(dec)
        backend = dec.backend
        meta = dec.metadata
        stats, file = dec.stats, dec.source.name  # a URL is shown with credentials redacted
    print(f"{file}: stream {meta.stream_index}, {n_frames} frames, {meta.width}x{meta.height}, backend {backend}")
    if transforms:
        print(f"  transforms: {', '.join(map(repr, transforms))}")
    captions = []
    for index, pts, dur in zip(indices, batch.pts_seconds.tolist(), batch.duration_seconds.tolist()):
        resolved = index if index >= 0 else n_frames + index
        captions.append(f"#{resolved}  pts {pts:.3f} s")
        print(f"  frame {resolved}: pts {pts:.6f} s, duration {dur:.6f} s, "
              f"tensor {tuple(batch.data.shape[1:])} {str(batch.data.dtype).replace('torch.', '')}")
    out = contact_sheet(batch.data, captions, args.output)
    print(f"wrote {out} ({len(captions)} frames)")
    _print_read_stats(stats, file)
    return 0


def _cmd_index(args) -> int:
    import json

    import mediadecode as md

    with md.VideoDecoder(args.file, stream_index=args.stream_index, backend=args.backend,
                         seek_mode="exact", **_source_options(args)) as dec:
        index = dec.frame_index
        if index is None:
            raise ValueError(
                f"backend {dec.backend!r} keeps no frame index in stream ticks; use --backend ffmpeg"
            )
        data = index.as_ffprobe_json(stream_index=dec.metadata.stream_index)
    text = json.dumps(data, indent=4) + "\n"
    if args.output in (None, "-"):
        sys.stdout.write(text)
    else:
        tmp = Path(args.output + ".part")
        try:
            tmp.write_text(text)
            os.replace(tmp, args.output)
        finally:
            if tmp.exists():
                tmp.unlink()
    return 0


def _cmd_backends(args) -> int:
    import mediadecode as md

    rows = md.list_backends()
    print(f"{'name':<12} {'available':<9} {'priority':>8}  {'devices':<10} {'media':<12} reason / source")
    for r in rows:
        where = r.reason if not r.available else f"{r.target} ({r.distribution or 'built-in'})"
        print(f"{r.name:<12} {'yes' if r.available else 'no':<9} {r.priority:>8}  "
              f"{','.join(r.devices) or '?':<10} {','.join(r.media_types) or '?':<12} {where}")
        if r.capabilities is not None:
            print(f"{'':<12} capabilities: {r.capabilities.summary()}")
            if r.capabilities.notes:
                print(f"{'':<12} notes: {r.capabilities.notes}")
    return 0


def _cmd_encode_sample(args) -> int:
    import math

    import torch

    import mediadecode as md
    from mediadecode.encoders import Encoder

    width, height = args.size
    n = max(1, int(round(args.seconds * args.fps)))
    y = torch.arange(height).view(1, height, 1)
    x = torch.arange(width).view(1, 1, width)
    t = torch.arange(n).view(n, 1, 1)
    frames = torch.stack([
        ((x * 255) // width + 4 * t) % 256 + 0 * y,
        ((y * 255) // height + 3 * t) % 256 + 0 * x,
        ((x + y) // 4 + 2 * t) % 256,
    ], dim=1).to(torch.uint8)
    rate = 48000
    tone = 0.3 * torch.sin(2 * math.pi * 440 * torch.arange(int(args.seconds * rate)) / rate)
    encoder = Encoder(backend=args.backend)
    video = encoder.add_video(height=height, width=width, frame_rate=args.fps, codec=args.codec,
                              pixel_format=args.pixel_format, crf=args.crf, preset=args.preset)
    audio = encoder.add_audio(sample_rate=rate, num_channels=1) if not args.no_audio else None
    with encoder.open_file(args.output):
        video.add_frames(frames)
        if audio is not None:
            audio.add_samples(tone.to(torch.float32))
    print(f"wrote {args.output} with backend {encoder.backend}: {n} frames {width}x{height} at "
          f"{args.fps} fps" + ("" if audio is None else f", {args.seconds:g} s of 440 Hz tone"))
    with md.VideoDecoder(args.output) as dec:
        batch = dec.get_frames_at(list(range(len(dec))))
        meta = dec.metadata
    diff = (batch.data.double() - frames.double()) if batch.data.shape == frames.shape else None
    mse = float(diff.pow(2).mean()) if diff is not None else float("nan")
    psnr = float("inf") if mse == 0 else 10 * math.log10(255 ** 2 / mse)
    print(f"decoded back: {len(batch.data)} frames, codec {meta.codec}, pixel format {meta.pixel_format}, "
          f"pts {batch.pts_seconds[0]:.6f} .. {batch.pts_seconds[-1]:.6f} s, "
          f"PSNR {psnr:.2f} dB" + (" (bit-exact)" if mse == 0 else ""))
    if audio is not None:
        with md.AudioDecoder(args.output) as adec:
            samples = adec.get_all_samples()
            codec = adec.metadata.codec
        print(f"decoded back: audio {codec}, {samples.data.shape[1]} samples at {samples.sample_rate} Hz")
    return 0


def _parse_frame_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    return w, h


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mediadecode", description="Decode video and audio into PyTorch tensors.")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p):
        p.add_argument("file", nargs="?", help="media file (none: make a sample clip)")
        p.add_argument("--backend", default=None, help="backend name (default: selection rules)")
        p.add_argument("--seek-mode", default="exact", choices=["exact", "approximate"])
        p.add_argument("--storage-options", default=None, metavar="JSON",
                       help="for URLs: fsspec storage options as a JSON object (credentials, "
                            "client_kwargs/endpoint_url, block_size, cache_type)")
        p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                       help="for URLs: connect and read timeout (default 10 s connect, 30 s read)")
        p.add_argument("--allow-playlists", action="store_true",
                       help="let FFmpeg open playlist-type formats (HLS, ffconcat) that name "
                            "other files; only for trusted local files")

    p_info = sub.add_parser("info", help="streams and metadata of a file or URL")
    common(p_info)
    p_info.set_defaults(func=_cmd_info)

    p_frames = sub.add_parser("frames", help="write a contact sheet PNG of some frames")
    common(p_frames)
    p_frames.add_argument("--at", type=_parse_indices, default=None,
                          help="comma-separated frame indices, negatives count from the end (default: first, middle, last)")
    p_frames.add_argument("--stream-index", type=int, default=None)
    p_frames.add_argument("--resize", type=_parse_size, default=None, metavar="N|HxW",
                          help="resize first: N = shorter side (aspect kept), HxW exact")
    p_frames.add_argument("--crop", type=_parse_size, default=None, metavar="N|HxW",
                          help="then a centre crop of NxN or HxW")
    p_frames.add_argument("-o", "--output", default="sheet.png", help="PNG to write (default: sheet.png)")
    p_frames.set_defaults(func=_cmd_frames)

    p_index = sub.add_parser(
        "index", help="write a video stream's frame index as ffprobe -show_frames JSON "
                      "(for custom_frame_mappings)")
    p_index.add_argument("file", help="media file or URL")
    p_index.add_argument("--stream-index", type=int, default=None,
                         help="video stream (default: FFmpeg's best)")
    p_index.add_argument("--backend", default="ffmpeg",
                         help="backend whose scan builds the index (default: ffmpeg)")
    p_index.add_argument("--storage-options", default=None, metavar="JSON",
                         help="for URLs: fsspec storage options as a JSON object")
    p_index.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                         help="for URLs: connect and read timeout")
    p_index.add_argument("--allow-playlists", action="store_true",
                         help="let FFmpeg open playlist-type formats of trusted local files")
    p_index.add_argument("-o", "--output", default=None,
                         help="JSON file to write (default: standard output)")
    p_index.set_defaults(func=_cmd_index)

    p_backends = sub.add_parser("backends", help="list backends, available or not and why")
    p_backends.set_defaults(func=_cmd_backends)

    p_encode = sub.add_parser("encode-sample", help="encode a short generated clip and decode it back")
    p_encode.add_argument("output", nargs="?", default="sample_encoded.mp4",
                          help="file to write; its extension chooses the container (default: sample_encoded.mp4)")
    p_encode.add_argument("--seconds", type=float, default=2.0)
    p_encode.add_argument("--fps", type=float, default=30.0)
    p_encode.add_argument("--size", type=_parse_frame_size, default=(320, 240), metavar="WxH")
    p_encode.add_argument("--codec", default=None, help="video codec (default: the container's)")
    p_encode.add_argument("--pixel-format", default=None)
    p_encode.add_argument("--crf", type=float, default=None)
    p_encode.add_argument("--preset", default=None)
    p_encode.add_argument("--no-audio", action="store_true", help="video only")
    p_encode.add_argument("--backend", default=None, help="backend name (default: selection rules)")
    p_encode.set_defaults(func=_cmd_encode_sample)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mediadecode`` command; returns the exit status."""
    from .errors import MediaDecodeError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (MediaDecodeError, ValueError, IndexError, TypeError, OSError) as exc:
        print(f"mediadecode: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
