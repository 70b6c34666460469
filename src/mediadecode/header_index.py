"""The exact frame index of an MP4/MOV video stream from its header alone, without a packet scan.

An exact-mode open scans every packet of the stream to learn each frame's pts, duration and
keyframe flag; for a remote file that pulls every sample over the network. In MP4 and MOV the
``moov`` box already holds all of it. FFmpeg's mov demuxer turns the sample tables into the
stream's index (``stream.index_entries`` in PyAV 18: decode timestamps after FFmpeg has applied
the edit list, byte position, size, keyframe and discard flags), but PyAV does not expose the
composition offsets (``ctts``) that turn decode times into presentation times. This module reads
them from the ``moov`` box itself, maps each index entry to its sample by byte position, and
returns what :meth:`FFmpegVideoReader._scan` would return — or None whenever it cannot be sure.

Parsing is bounded: box sizes are checked against their parent and the file size, table entry
counts against their box's payload, and the ``moov`` box is read only if it is at most
:data:`MAX_MOOV_BYTES`. Anything unexpected gives None (the caller falls back to the scan):
correctness first.
"""

from __future__ import annotations

import io
import os
import struct
from typing import Any

from .frame_index import fill_missing_durations

__all__ = ["index_from_header", "MAX_MOOV_BYTES"]

MAX_MOOV_BYTES = 64 * 1024 * 1024
"""Largest ``moov`` box read (about 10 million samples' tables); a larger one gives None."""

# Demuxers whose index_entries come from an MP4/MOV sample table.
_MOV_FORMATS = frozenset({"mov", "mp4", "m4a", "3gp", "3g2", "mj2"})

# Codecs the mov demuxer hands over packet for packet (no parser that could split or merge
# samples or rewrite their timestamps).
_CODECS = frozenset({"h264", "hevc", "mpeg4", "prores", "mjpeg", "av1", "vp9", "png", "dnxhd",
                     "qtrle", "rawvideo"})

# Boxes on the path from moov to the sample tables.
_CONTAINERS = frozenset({b"trak", b"mdia", b"minf", b"stbl", b"edts"})


class _Unsupported(Exception):
    """The header cannot give the exact index (the caller gets None)."""


def _boxes(data: bytes | memoryview, start: int, end: int):
    """(type, payload start, payload end) of each box in ``data[start:end]``."""
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if pos + 16 > end:
                raise _Unsupported("truncated box header")
            size = struct.unpack_from(">Q", data, pos + 8)[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise _Unsupported(f"box {kind!r} overruns its parent")
        yield kind, pos + header, pos + size
        pos += size


def _read_moov(f, file_size: int) -> bytes:
    """The ``moov`` box's payload, found by walking the top-level boxes of ``f``."""
    pos = 0
    while pos + 8 <= file_size:
        f.seek(pos)
        head = f.read(16)
        if len(head) < 8:
            break
        size, kind = struct.unpack_from(">I4s", head, 0)
        header = 8
        if size == 1:
            if len(head) < 16:
                break
            size = struct.unpack_from(">Q", head, 8)[0]
            header = 16
        elif size == 0:
            size = file_size - pos
        if size < header or pos + size > file_size:
            raise _Unsupported(f"top-level box {kind!r} overruns the file")
        if kind == b"moov":
            if size - header > MAX_MOOV_BYTES:
                raise _Unsupported("moov box too large")
            f.seek(pos + header)
            payload = f.read(size - header)
            if len(payload) != size - header:
                raise _Unsupported("short read of the moov box")
            return payload
        pos += size
    raise _Unsupported("no moov box")


def _full_box(data, start: int, end: int, entry_size: int, header: int = 8) -> tuple[int, int, int]:
    """(version, entry count, first entry offset) of a full box whose table has
    ``entry_size``-byte entries after a ``header``-byte prefix (version/flags and count)."""
    if start + header > end:
        raise _Unsupported("truncated table box")
    version = data[start]
    count = struct.unpack_from(">I", data, start + header - 4)[0]
    if count * entry_size > end - start - header:
        raise _Unsupported("table entry count exceeds its box")
    return version, count, start + header


def _find_track(moov, track_id: int) -> dict[bytes, tuple[int, int]]:
    """The boxes of the ``trak`` whose ``tkhd`` has ``track_id``: type -> (start, end)."""
    found = None
    for kind, start, end in _boxes(moov, 0, len(moov)):
        if kind == b"mvex":
            raise _Unsupported("fragmented MP4 (mvex): samples live in the fragments")
        if kind != b"trak":
            continue
        boxes: dict[bytes, tuple[int, int]] = {}

        def walk(s: int, e: int) -> None:
            for k, bs, be in _boxes(moov, s, e):
                if k in _CONTAINERS:
                    walk(bs, be)
                elif k not in boxes:
                    boxes[k] = (bs, be)

        walk(start, end)
        tkhd = boxes.get(b"tkhd")
        if tkhd is None:
            continue
        version = moov[tkhd[0]]
        offset = tkhd[0] + (4 + 16 if version == 1 else 4 + 8)
        if offset + 4 > tkhd[1]:
            raise _Unsupported("truncated tkhd")
        if struct.unpack_from(">I", moov, offset)[0] == track_id:
            if found is not None:
                raise _Unsupported("two tracks with one id")
            found = boxes
    if found is None:
        raise _Unsupported(f"no track with id {track_id}")
    return found


def _sample_offsets(moov, boxes, num_samples: int) -> list[int]:
    """Each sample's composition offset (``ctts``), 0 without a ``ctts`` box."""
    if b"cslg" in boxes:
        raise _Unsupported("cslg: a composition-to-decode shift we do not reproduce")
    if b"ctts" not in boxes:
        return [0] * num_samples
    start, end = boxes[b"ctts"]
    version, count, pos = _full_box(moov, start, end, 8)
    offsets: list[int] = []
    for k in range(count):
        n, off = struct.unpack_from(">Ii" if version == 1 else ">II", moov, pos + 8 * k)
        if version == 0 and off >= 2**31:
            off -= 2**32  # FFmpeg reads version-0 offsets as signed too
        if n == 0:
            raise _Unsupported("ctts entry with a zero count")
        if off < 0:
            # FFmpeg then shifts decode times by a dts_shift whose rule changed between
            # versions; not reproduced.
            raise _Unsupported("negative composition offset")
        if len(offsets) + n > num_samples:
            raise _Unsupported("ctts covers more samples than the track has")
        offsets.extend([off] * n)
    if len(offsets) != num_samples:
        raise _Unsupported("ctts does not cover every sample")
    return offsets


def _sample_positions(moov, boxes, num_samples: int) -> tuple[list[int], list[int]]:
    """(byte position, size) of each sample in decode order, from stsz, stsc and stco/co64."""
    if b"stsz" not in boxes or b"stsc" not in boxes:
        raise _Unsupported("no stsz/stsc")
    start, end = boxes[b"stsz"]
    if start + 12 > end:
        raise _Unsupported("truncated stsz")
    uniform, count = struct.unpack_from(">II", moov, start + 4)
    if count != num_samples:
        raise _Unsupported("stsz and the index disagree on the sample count")
    if uniform:
        sizes = [uniform] * count
    else:
        if count * 4 > end - start - 12:
            raise _Unsupported("stsz entry count exceeds its box")
        sizes = list(struct.unpack_from(f">{count}I", moov, start + 12))
    if b"stco" in boxes:
        s, e = boxes[b"stco"]
        _, n_chunks, pos = _full_box(moov, s, e, 4)
        chunks = list(struct.unpack_from(f">{n_chunks}I", moov, pos))
    elif b"co64" in boxes:
        s, e = boxes[b"co64"]
        _, n_chunks, pos = _full_box(moov, s, e, 8)
        chunks = list(struct.unpack_from(f">{n_chunks}Q", moov, pos))
    else:
        raise _Unsupported("no stco/co64")
    s, e = boxes[b"stsc"]
    _, n_runs, pos = _full_box(moov, s, e, 12)
    runs = [struct.unpack_from(">III", moov, pos + 12 * k) for k in range(n_runs)]
    positions: list[int] = []
    for r, (first_chunk, per_chunk, _desc) in enumerate(runs):
        last_chunk = runs[r + 1][0] - 1 if r + 1 < len(runs) else len(chunks)
        if first_chunk < 1 or last_chunk > len(chunks) or last_chunk < first_chunk - 1:
            raise _Unsupported("stsc runs out of order")
        for chunk in range(first_chunk - 1, last_chunk):
            offset = chunks[chunk]
            for _ in range(per_chunk):
                k = len(positions)
                if k >= count:
                    raise _Unsupported("stsc places more samples than stsz has")
                positions.append(offset)
                offset += sizes[k]
    if len(positions) != count:
        raise _Unsupported("stsc places fewer samples than stsz has")
    return positions, sizes


def _sample_durations(moov, boxes, num_samples: int) -> list[int]:
    """Each sample's decode duration (``stts``)."""
    if b"stts" not in boxes:
        raise _Unsupported("no stts")
    start, end = boxes[b"stts"]
    _, count, pos = _full_box(moov, start, end, 8)
    durations: list[int] = []
    for k in range(count):
        n, d = struct.unpack_from(">II", moov, pos + 8 * k)
        if len(durations) + n > num_samples:
            raise _Unsupported("stts covers more samples than the track has")
        durations.extend([d] * n)
    if len(durations) != num_samples:
        raise _Unsupported("stts does not cover every sample")
    return durations


def _file_of(container) -> tuple[Any, bool]:
    """A seekable binary file holding the container's bytes, and whether we opened it."""
    wrapper = getattr(container, "file", None)
    fileobj = getattr(wrapper, "file", None)
    if fileobj is not None:
        return fileobj, False
    name = getattr(container, "name", "") or ""
    if name.startswith("file:"):
        name = name[len("file:"):]
    if name and os.path.isfile(name):
        return open(name, "rb"), True
    raise _Unsupported("the container's bytes are not reachable")


def index_from_header(container, stream, *, fileobj=None) -> dict | None:
    """The exact frame index of ``stream`` (a PyAV video stream of the open ``container``) from
    the MP4/MOV header, or None when the header cannot give it exactly.

    Returns:
        ``{"pts": [...], "durations": [...], "keyframes": [...]}``: plain ``int`` lists in the
        stream's time base (ticks); ``pts`` and ``durations`` in presentation order, one per
        frame, ``keyframes`` the sorted pts of the keyframes — what a packet scan
        (``FFmpegVideoReader._scan``) gives: samples of size 0 and samples FFmpeg marks for
        discard (edit-list preroll) are left out, a zero duration is filled from the gap to the
        next frame. Reads only the ``moov`` box (and the top-level box headers before it).

    None for: other containers (Matroska, WebM, AVI... whose index needs a scan), fragmented
    MP4, negative composition offsets or a ``cslg`` box (FFmpeg's decode-time shift),
    tables that disagree with FFmpeg's index, codecs the demuxer parses, or a malformed or
    oversized header.

    Args:
        container: an open PyAV input container (``mediadecode.pyav.open_container(source)
            .container``).
        stream: its video stream.
        fileobj: a seekable binary file with the same bytes; default: the Python file object
            the container reads (its position is restored) or the local file it names.
    """
    fmt = getattr(getattr(container, "format", None), "name", "") or ""
    if not set(fmt.split(",")) & _MOV_FORMATS:
        return None
    if stream.type != "video" or stream.codec_context.name not in _CODECS:
        return None
    try:
        entries = list(stream.index_entries)
    except Exception:
        return None
    if not entries:
        return None
    owned = False
    try:
        if fileobj is None:
            fileobj, owned = _file_of(container)
        saved = fileobj.tell()
        try:
            size = fileobj.seek(0, io.SEEK_END)
            moov = _read_moov(fileobj, size)
        finally:
            fileobj.seek(saved)
        return _index(moov, stream, entries)
    except (_Unsupported, struct.error, OSError, ValueError):
        return None
    finally:
        if owned:
            fileobj.close()


def _index(moov: bytes, stream, entries: list) -> dict:
    boxes = _find_track(moov, stream.id)
    if b"stsz" not in boxes:
        raise _Unsupported("no stsz")
    start, end = boxes[b"stsz"]
    if start + 12 > end:
        raise _Unsupported("truncated stsz")
    num_samples = struct.unpack_from(">I", moov, start + 8)[0]
    # Every sample has an entry in FFmpeg's index unless an edit list dropped it; more samples
    # than that are tables we would only read to throw away (or a hostile count).
    if num_samples > 4 * len(entries) + 1024:
        raise _Unsupported("far more samples than index entries")
    positions, sizes = _sample_positions(moov, boxes, num_samples)
    offsets = _sample_offsets(moov, boxes, num_samples)
    durations = _sample_durations(moov, boxes, num_samples)
    by_pos: dict[int, int] = {}
    for k, (p, s) in enumerate(zip(positions, sizes)):
        if s:
            if p in by_pos:
                raise _Unsupported("two samples at one position")
            by_pos[p] = k
    frames: list[tuple[int, int]] = []
    keyframes: list[int] = []
    for e in entries:
        if e.size == 0 or e.is_discard:
            continue
        k = by_pos.get(e.pos)
        if k is None or sizes[k] != e.size:
            raise _Unsupported("an index entry matches no sample")
        pts = e.timestamp + offsets[k]
        frames.append((pts, durations[k]))
        if e.is_keyframe:
            keyframes.append(pts)
    frames.sort()
    pts_list = [p for p, _ in frames]
    dur_list = fill_missing_durations(pts_list, [d for _, d in frames])
    return {"pts": pts_list, "durations": dur_list, "keyframes": sorted(keyframes)}
