"""A deliberately small mediadecode backend: video from local paths, exact mode, with PyAV.

It implements only the protocol primitives (``mediadecode.protocol``): open a stream, give frames
at sorted unique indices, metadata, close. The facade does everything else: validation, negative
indices, slices, time lookups, rotation, dimension order, pickling and DataLoader workers.

Strategy: one packet scan at open gives every frame's pts, duration and the keyframes; a request
seeks to the keyframe at or before the first wanted frame and decodes forward, re-seeking only
when a later keyframe lies before the next wanted frame.
"""

from __future__ import annotations

import bisect
from fractions import Fraction

import numpy as np
import torch

from mediadecode.capabilities import Capabilities
from mediadecode.errors import DecodingError, InvalidMediaError, StreamNotFoundError
from mediadecode.metadata import ContainerMetadata, VideoStreamMetadata, resolve_video


def _seconds(ticks, tb: Fraction) -> torch.Tensor:
    return torch.tensor(ticks, dtype=torch.float64) * tb.numerator / tb.denominator


class ExampleVideoReader:
    frames_are_rotated = False  # the facade rotates by metadata.rotation

    def __init__(self, path: str, stream_index: int | None):
        import av

        self._path = path
        try:
            # Damaged metadata must not fail the open (and PyAV's failed open keeps the file
            # until the cycle collector): undecodable tags are dropped.
            self._container = av.open(path, metadata_errors="ignore")
        except av.FFmpegError as exc:
            raise InvalidMediaError(f"{path}: the example backend cannot open it: {exc}") from exc
        try:
            self._open(stream_index)
        except av.FFmpegError as exc:
            self.close()
            raise InvalidMediaError(f"{path}: the example backend cannot read it: {exc}") from exc
        except BaseException:
            self.close()
            raise

    def _open(self, stream_index):
        c = self._container
        if c.format.name == "tty":
            raise InvalidMediaError(f"{self._path}: a text file, not media")
        if stream_index is None:
            stream = c.streams.best("video")
            if stream is None:
                raise StreamNotFoundError(f"{self._path}: no video stream")
        else:
            if not 0 <= stream_index < len(c.streams) or c.streams[stream_index].type != "video":
                raise StreamNotFoundError(f"{self._path}: stream {stream_index} is not a video stream")
            stream = c.streams[stream_index]
        self._stream, self._tb = stream, stream.time_base
        entries, keys = [], []
        for packet in c.demux(stream):
            if packet.size == 0 or packet.pts is None or packet.is_discard:
                continue
            entries.append((packet.pts, packet.duration or 0))
            if packet.is_keyframe:
                keys.append(packet.pts)
        entries.sort()
        self._pts = [p for p, _ in entries]
        self._keys = sorted(keys)
        durs = [d for _, d in entries]
        for k, d in enumerate(durs):
            if d <= 0:
                durs[k] = self._pts[k + 1] - self._pts[k] if k + 1 < len(durs) else (durs[k - 1] if k else 0)
        self.frame_pts = _seconds(self._pts, self._tb)
        self.frame_durations = _seconds(durs, self._tb)
        c.seek(0, stream=stream)
        first = next(c.decode(stream), None)
        if first is None:
            raise InvalidMediaError(f"{self._path}: no frame decodes")
        rate = stream.average_rate
        rotation = float(90 * round(first.rotation / 90)) if any(
            getattr(sd.type, "name", "") == "DISPLAYMATRIX" for sd in first.side_data) else None
        width, height = first.width, first.height
        self._size = (width, height)
        if rotation is not None and int(rotation) % 180:
            width, height = height, width
        cc = stream.codec_context
        n = len(self._pts)
        meta = VideoStreamMetadata(
            duration_seconds_from_header=float(stream.duration * self._tb) if stream.duration else None,
            begin_stream_seconds_from_header=float(stream.start_time * self._tb) if stream.start_time is not None else None,
            bit_rate=float(cc.bit_rate) if cc.bit_rate else None,
            codec=cc.name,
            stream_index=stream.index,
            media_type="video",
            width=width,
            height=height,
            num_frames_from_header=stream.frames or None,
            average_fps_from_header=float(rate) if rate else None,
            rotation=rotation,
            pixel_format=first.format.name,
            num_frames_from_content=n,
            begin_stream_seconds_from_content=float(self.frame_pts[0]) if n else None,
            end_stream_seconds_from_content=float(torch.max(self.frame_pts + self.frame_durations)) if n else None,
        )
        resolve_video(meta)
        self.metadata = meta
        self.container_metadata = ContainerMetadata(
            duration_seconds_from_header=c.duration / 1e6 if c.duration else None,
            bit_rate_from_header=float(c.bit_rate) if c.bit_rate else None,
            best_video_stream_index=stream.index,
            best_audio_stream_index=None,
            streams=[],
            format_name=c.format.name,
        )

    def get_frames_at(self, indices):
        import av

        width, height = self._size
        out = np.empty((len(indices), height, width, 3), dtype=np.uint8)
        targets = [self._pts[i] for i in indices]
        frames = None
        last = None
        for slot, target in enumerate(targets):
            k = bisect.bisect_right(self._keys, target) - 1
            key = self._keys[k] if k >= 0 else None
            if frames is None or last is None or target <= last or (key is not None and key > last):
                self._container.seek(key if key is not None else 0, stream=self._stream, backward=True)
                frames = self._container.decode(self._stream)
            try:
                for frame in frames:
                    last = frame.pts
                    if frame.pts == target:
                        out[slot] = frame.to_ndarray(format="rgb24", width=width, height=height)
                        break
                    if frame.pts > target:
                        raise DecodingError(f"{self._path}: frame {indices[slot]} is missing")
                else:
                    raise DecodingError(f"{self._path}: frame {indices[slot]} is past the end")
            except av.FFmpegError as exc:
                raise DecodingError(f"{self._path}: decoding failed: {exc}") from exc
        index = torch.tensor(list(indices), dtype=torch.long)
        return torch.from_numpy(out), self.frame_pts[index], self.frame_durations[index]

    def get_frames_played_at(self, seconds):  # pragma: no cover - exact mode: the facade maps times
        raise NotImplementedError("exact mode only")

    def get_frames_played_in_range(self, start, stop):  # pragma: no cover - as above
        raise NotImplementedError("exact mode only")

    def close(self):
        container, self._container = getattr(self, "_container", None), None
        if container is not None:
            container.close()


class ExampleBackend:
    """Video from local paths, exact mode, CPU, with PyAV. Priority 1: used when chosen."""

    name = "example"
    priority = 1
    devices = ("cpu",)
    media_types = ("video",)
    install_hint = "pip install mediadecode-example-backend"
    capabilities = Capabilities(
        devices=("cpu",),
        media_types=("video",),
        source_kinds=("path",),
        seek_modes=("exact",),
        notes="example third-party plugin (PyAV, paths only)",
    )

    @classmethod
    def unavailable_reason(cls):
        try:
            import av  # noqa: F401
        except ImportError as exc:
            return f"PyAV is missing ({exc}); fix: pip install av"
        return None

    def open_video(self, source, *, stream_index, seek_mode, num_threads, device="cpu"):
        return ExampleVideoReader(source.value, stream_index)

    def open_audio(self, source, **kwargs):  # pragma: no cover - not declared, never selected
        raise NotImplementedError("the example backend decodes video only")
