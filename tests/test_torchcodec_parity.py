"""torchcodec 0.17 decoder parity (issue 13, part B): ``custom_frame_mappings`` and
``mediadecode index``, keyframe indices, the rest of the 0.17 decoder surface, edit lists,
approximate mode and error classes.

References are FFmpeg's own output (``ffprobe`` / ``ffmpeg`` CLI JSON and framemd5, PyAV decoding
every frame) and torchcodec 0.17 itself; tests that need torchcodec or the FFmpeg CLI skip with
the reason when they cannot run here (a fresh machine without system FFmpeg).
"""

from __future__ import annotations

import io
import json
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ffmpeg_cli_or_skip, pyav_reference, torchcodec_or_skip

import mediadecode as md
from mediadecode import registry, selection
from mediadecode.backends.ffmpeg import FFmpegVideoReader
from mediadecode.cli import main as cli_main
from mediadecode.frame_index import FrameIndex, read_ffprobe_json

FILES = ["h264_bframes.mp4", "h264_bframes.mkv", "vfr.mp4", "nonzero_start.mkv"]


@pytest.fixture(autouse=True)
def _no_outside_choice(monkeypatch, tmp_path):
    monkeypatch.delenv("MEDIADECODE_BACKEND", raising=False)
    monkeypatch.setenv("MEDIADECODE_CONFIG", str(tmp_path / "no-config.toml"))


def need_backend(name: str) -> None:
    reason = registry.unavailable_reason(name) if name in registry.registry() else "not registered"
    if reason is not None:
        pytest.skip(f"backend {name!r} is unavailable: {reason}")


def ffprobe_frames(path: Path, stream: str = "v:0") -> list[dict]:
    """``ffprobe -show_frames`` JSON of one stream: the keys torchcodec documents, with the
    duration under whichever name this FFmpeg uses (``duration`` from 6, ``pkt_duration``
    before)."""
    ffprobe = ffmpeg_cli_or_skip("ffprobe")
    out = subprocess.run(
        [ffprobe, "-v", "error", "-i", str(path), "-select_streams", stream, "-show_frames",
         "-show_entries", "frame=pts,duration,pkt_duration,key_frame", "-of", "json"],
        check=True, capture_output=True, timeout=120,
    ).stdout
    return json.loads(out)["frames"]


def _duration(frame: dict) -> int:
    """ffprobe's duration of a frame; 0 where it prints none (unknown)."""
    return int(frame.get("duration", frame.get("pkt_duration", 0)))


@pytest.fixture(scope="session")
def edit_list_mp4(tmp_path_factory, generated_video) -> Path:
    """An MP4 whose edit list discards its first keyframe, as ``ffmpeg -ss 0.3 -i X -c copy``
    makes one: the packets are copied (PyAV remux, no re-encoding) with timestamps shifted 0.3 s
    back, so the first GOP's frames before 0.3 s get negative times and the MP4 muxer writes an
    edit list that starts at 0.3 s; FFmpeg's demuxer marks those packets for discard."""
    import av

    source = generated_video("h264_bframes.mp4").path
    out = tmp_path_factory.mktemp("editlist") / "edit_list.mp4"
    with av.open(str(source)) as inp, av.open(str(out), "w") as muxer:
        stream = inp.streams.video[0]
        copy = muxer.add_stream_from_template(stream)
        shift = round(Fraction(3, 10) / stream.time_base)
        for packet in inp.demux(stream):
            if packet.dts is None:
                continue  # the flush packet
            packet.pts -= shift
            packet.dts -= shift
            packet.stream = copy
            muxer.mux(packet)
    return out


def _media(name: str, generated_video, edit_list_mp4) -> Path:
    return edit_list_mp4 if name == "edit_list.mp4" else generated_video(name).path


# -- custom_frame_mappings -----------------------------------------------------------------------


@pytest.mark.parametrize("form", ["path", "str-path", "json-str", "bytes", "binary-file", "text-file"])
def test_custom_frame_mappings_from_ffprobe_give_ffmpegs_frames(h264_mp4, tmp_path, form):
    frames = ffprobe_frames(h264_mp4.path)
    doc = json.dumps({"frames": frames})
    path = tmp_path / "frames.json"
    path.write_text(doc)
    mappings = {
        "path": path, "str-path": str(path), "json-str": doc, "bytes": doc.encode(),
        "binary-file": io.BytesIO(doc.encode()), "text-file": io.StringIO(doc),
    }[form]
    ref = pyav_reference(h264_mp4.path)
    with md.VideoDecoder(h264_mp4.path, custom_frame_mappings=mappings,
                         dimension_order="NHWC") as dec:
        assert len(dec) == len(frames) == len(ref)
        batch = dec.get_frames_at(list(range(len(dec))))
        assert np.array_equal(batch.data.numpy(), ref.frames)
        assert np.array_equal(batch.pts_seconds.numpy(), ref.times)
        assert dec.frame_index.pts == sorted(int(f["pts"]) for f in frames)


def test_custom_frame_mappings_replace_the_scan(h264_mp4, monkeypatch):
    frames = ffprobe_frames(h264_mp4.path)

    def no_scan(self):
        raise AssertionError("scanned although frame mappings were given")

    monkeypatch.setattr(FFmpegVideoReader, "_scan", no_scan)
    with md.VideoDecoder(h264_mp4.path, custom_frame_mappings=json.dumps({"frames": frames}),
                         backend="ffmpeg") as dec:
        assert len(dec) == len(frames)
        assert dec.metadata.num_frames == len(frames)


def test_packets_in_decode_order_are_sorted_as_torchcodec_sorts_them(h264_mp4):
    """``-show_packets`` lists pts in decode order (B-frames): the index is put in presentation
    order, as torchcodec's ``sort_all_frames``."""
    ffprobe = ffmpeg_cli_or_skip("ffprobe")
    packets = json.loads(subprocess.run(
        [ffprobe, "-v", "error", "-i", str(h264_mp4.path), "-select_streams", "v:0",
         "-show_packets", "-show_entries", "packet=pts,duration,flags", "-of", "json"],
        check=True, capture_output=True, timeout=120).stdout)["packets"]
    mapped = [{"pts": p["pts"], "duration": p["duration"], "key_frame": int("K" in p["flags"])}
              for p in packets]
    assert [m["pts"] for m in mapped] != sorted(m["pts"] for m in mapped)  # B-frames reorder
    index = FrameIndex.from_ffprobe_json({"frames": mapped}, Fraction(1, 12288))
    assert index.pts == sorted(m["pts"] for m in mapped)
    with md.VideoDecoder(h264_mp4.path, custom_frame_mappings=json.dumps({"frames": mapped})) as dec:
        ref = pyav_reference(h264_mp4.path)
        assert np.array_equal(dec.get_frames_at([0, 7, 30]).pts_seconds.numpy(), ref.times[[0, 7, 30]])


def test_custom_frame_mappings_through_torchcodec_backend(h264_mp4):
    torchcodec_or_skip()
    frames = ffprobe_frames(h264_mp4.path)
    ref = pyav_reference(h264_mp4.path)
    with md.VideoDecoder(h264_mp4.path, custom_frame_mappings=json.dumps({"frames": frames}),
                         backend="torchcodec", dimension_order="NHWC") as dec:
        assert len(dec) == len(ref)
        assert np.array_equal(dec.get_frames_at([0, 13, 47]).data.numpy(), ref.frames[[0, 13, 47]])
        assert torch.equal(dec.key_frame_indices, md.VideoDecoder(h264_mp4.path).key_frame_indices)


def test_decord_cannot_take_frame_mappings(h264_mp4):
    need_backend("decord")
    doc = json.dumps({"frames": ffprobe_frames(h264_mp4.path)})
    with pytest.raises(md.UnsupportedRequestError, match="custom_frame_mappings"):
        md.VideoDecoder(h264_mp4.path, custom_frame_mappings=doc, backend="decord")
    plan = selection.plan_backends("video", "cpu", source_kind="path", seek_mode="exact",
                                   frame_mappings=True)
    assert "decord" not in plan.names and "custom_frame_mappings" in plan.skipped["decord"]


BAD_MAPPINGS = {
    "not-json": "not json {",
    "empty-object": b"{}",
    "a-list": "[]",
    "no-duration": json.dumps({"frames": [{"pts": 0, "key_frame": 1}]}),
    "no-key-frame": json.dumps({"frames": [{"pts": 0, "duration": 1}]}),
    "not-a-mapping-type": 5,
}


@pytest.mark.parametrize("case", sorted(BAD_MAPPINGS))
def test_bad_mappings_raise_torchcodecs_error_class(h264_mp4, case):
    decoders = torchcodec_or_skip()
    bad = BAD_MAPPINGS[case]
    with pytest.raises(Exception) as theirs:
        decoders.VideoDecoder(str(h264_mp4.path), custom_frame_mappings=bad)
    with pytest.raises(Exception) as ours:
        md.VideoDecoder(h264_mp4.path, custom_frame_mappings=bad)
    assert isinstance(ours.value, type(theirs.value)), (ours.value, theirs.value)


def test_bad_mappings_without_torchcodec(h264_mp4):
    for bad in ("not json {", b"{}", json.dumps({"frames": [{"pts": 0}]}),
                json.dumps({"frames": []}), json.dumps({"frames": [{"pts": "x", "duration": 1,
                                                                     "key_frame": 1}]})):
        with pytest.raises(ValueError, match="custom frame mappings"):
            md.VideoDecoder(h264_mp4.path, custom_frame_mappings=bad)
    with pytest.raises(ValueError, match="approximate"):
        md.VideoDecoder(h264_mp4.path, custom_frame_mappings="{}", seek_mode="approximate")


def test_mappings_of_another_time_base_do_not_fit(h264_mp4):
    """Mappings whose pts are not the stream's: torchcodec opens and later raises RuntimeError
    (or returns other frames); mediadecode raises a RuntimeError at open, naming the file."""
    frames = ffprobe_frames(h264_mp4.path)
    shifted = json.dumps({"frames": [dict(f, pts=int(f["pts"]) + 1) for f in frames]})
    with pytest.raises(RuntimeError) as ours:
        md.VideoDecoder(h264_mp4.path, custom_frame_mappings=shifted)
    assert isinstance(ours.value, md.FrameMappingsError) and str(h264_mp4.path) in str(ours.value)
    if registry.unavailable_reason("torchcodec") is None:
        from torchcodec.decoders import VideoDecoder as TCDecoder

        tc = TCDecoder(str(h264_mp4.path), custom_frame_mappings=shifted)
        tb = _tb(h264_mp4.path)
        wrong = False
        try:  # torchcodec finds out late: other frames' pts, then a RuntimeError
            for i, f in enumerate(frames):
                wrong |= tc.get_frame_at(i).pts_seconds != float(int(f["pts"]) * tb)
        except RuntimeError:
            wrong = True
        assert wrong


# -- mediadecode index ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", FILES + ["edit_list.mp4"])
def test_index_command_writes_ffprobes_json(name, generated_video, edit_list_mp4, tmp_path, capsys):
    path = _media(name, generated_video, edit_list_mp4)
    out = tmp_path / "frames.json"
    assert cli_main(["index", str(path), "-o", str(out)]) == 0
    ours = json.loads(out.read_text())["frames"]
    theirs = ffprobe_frames(path)
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert (a["pts"], a["key_frame"]) == (int(b["pts"]), int(b["key_frame"]))
        if _duration(b) > 0:  # FFmpeg leaves some durations 0 (mkv); ours are then filled
            assert a["duration"] == _duration(b)
    assert [f["pts_time"] for f in ours][:3] == [f"{int(b['pts']) * float(_tb(path)):.6f}" for b in theirs[:3]]
    # the same JSON on standard output, and it round-trips into the same index
    assert cli_main(["index", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["frames"] == ours
    with md.VideoDecoder(path, custom_frame_mappings=out) as mapped, md.VideoDecoder(path) as scanned:
        assert mapped.frame_index.pts == scanned.frame_index.pts
        assert mapped.frame_index.durations == scanned.frame_index.durations
        assert torch.equal(mapped.key_frame_indices, scanned.key_frame_indices)


def _tb(path: Path) -> Fraction:
    import av

    with av.open(str(path)) as c:
        return Fraction(c.streams.video[0].time_base)


def test_index_json_is_read_by_torchcodec(h264_mp4, tmp_path):
    torchcodec_or_skip()
    from torchcodec.decoders import VideoDecoder as TCDecoder

    out = tmp_path / "frames.json"
    assert cli_main(["index", str(h264_mp4.path), "-o", str(out)]) == 0
    tc = TCDecoder(str(h264_mp4.path), custom_frame_mappings=out.read_text(), dimension_order="NHWC")
    ref = pyav_reference(h264_mp4.path)
    assert len(tc) == len(ref)
    assert np.array_equal(tc.get_frames_at([0, 11, 47]).data.numpy(), ref.frames[[0, 11, 47]])


def test_index_command_errors(tmp_path, capsys):
    assert cli_main(["index", str(tmp_path / "missing.mp4")]) == 1
    assert "missing.mp4" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # no partial output


# -- keyframes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["ffmpeg", "torchcodec", "decord"])
@pytest.mark.parametrize("name", FILES + ["edit_list.mp4"])
def test_key_frame_indices_match_ffprobe(name, backend, generated_video, edit_list_mp4):
    need_backend(backend)
    if backend == "torchcodec":
        torchcodec_or_skip()
    path = _media(name, generated_video, edit_list_mp4)
    expected = [k for k, f in enumerate(ffprobe_frames(path)) if int(f["key_frame"])]
    try:
        dec = md.VideoDecoder(path, backend=backend)
    except (md.UnsupportedRequestError, md.InvalidMediaError) as exc:
        pytest.skip(f"{backend} does not open {name}: {exc}")
    try:
        keys = dec.key_frame_indices
    except md.DecodingError as exc:  # decord reads the whole file lazily
        pytest.skip(f"{backend} does not decode {name}: {exc}")
    assert keys.dtype == torch.int64
    assert keys.tolist() == expected
    assert torch.equal(dec._get_key_frame_indices(), keys)


@pytest.mark.parametrize("name", FILES + ["edit_list.mp4"])
def test_key_frame_indices_match_torchcodecs(name, generated_video, edit_list_mp4):
    decoders = torchcodec_or_skip()
    path = _media(name, generated_video, edit_list_mp4)
    theirs = decoders.VideoDecoder(str(path))._get_key_frame_indices()
    assert md.VideoDecoder(path)._get_key_frame_indices().tolist() == list(theirs.tolist())


def test_key_frame_indices_need_exact_mode_as_in_torchcodec(h264_mp4):
    with pytest.raises(RuntimeError, match="exact"):
        _ = md.VideoDecoder(h264_mp4.path, seek_mode="approximate").key_frame_indices
    if registry.unavailable_reason("torchcodec") is None:
        from torchcodec.decoders import VideoDecoder as TCDecoder

        with pytest.raises(RuntimeError):
            TCDecoder(str(h264_mp4.path), seek_mode="approximate")._get_key_frame_indices()


# -- the rest of the 0.17 decoder surface ---------------------------------------------------------


def test_device_none_is_torchs_default_device(h264_mp4, monkeypatch):
    with md.VideoDecoder(h264_mp4.path, device=None) as dec:
        assert dec[0].device == torch.get_default_device()
    if not torch.cuda.is_available():
        # the default device is consulted at construction: a CUDA default needs a CUDA backend
        monkeypatch.setattr(torch, "get_default_device", lambda: torch.device("cuda"))
        with pytest.raises((md.BackendUnavailableError, md.UnsupportedRequestError), match="cuda"):
            md.VideoDecoder(h264_mp4.path)


def test_device_none_matches_torchcodec(h264_mp4):
    decoders = torchcodec_or_skip()
    theirs = decoders.VideoDecoder(str(h264_mp4.path), device=None)
    with md.VideoDecoder(h264_mp4.path, device=None) as ours:
        assert ours[0].device == theirs[0].device


def test_simple_video_decoder_is_the_video_decoder(h264_mp4):
    assert md.SimpleVideoDecoder is md.VideoDecoder
    assert md.decoders.SimpleVideoDecoder is md.decoders.VideoDecoder
    decoders = torchcodec_or_skip()
    assert decoders.SimpleVideoDecoder is decoders.VideoDecoder  # what torchcodec 0.17 exports


def test_decoders_module_exports_torchcodecs_decoder_names():
    decoders = torchcodec_or_skip()
    for name in ("VideoDecoder", "SimpleVideoDecoder", "AudioDecoder", "CpuFallbackStatus",
                 "VideoStreamMetadata", "AudioStreamMetadata", "set_cuda_backend",
                 "get_nvdec_cache_capacity", "set_nvdec_cache_capacity"):
        assert hasattr(decoders, name)
        assert name in md.decoders.__all__ and hasattr(md.decoders, name)


def test_set_cuda_backend_maps_onto_use_backend(h264_mp4):
    assert selection.current_backend_choice(device="cuda").name is None
    for spelling in ("nvdec", "NVDEC", "beta", "ffmpeg"):
        with md.set_cuda_backend(spelling):
            choice = selection.current_backend_choice(device="cuda:0")
            assert choice.name == "nvdec" and choice.allows_cpu_fallback
            # decoders on the CPU are unaffected, as in torchcodec
            assert selection.current_backend_choice(device="cpu").name is None
            with md.VideoDecoder(h264_mp4.path, device="cpu") as dec:
                assert dec.backend == "ffmpeg"
        assert selection.current_backend_choice(device="cuda").name is None
    with md.use_backend("ffmpeg"), md.set_cuda_backend("nvdec"):
        assert selection.current_backend_choice(device="cpu").name == "ffmpeg"
        assert selection.current_backend_choice(device="cuda").name == "nvdec"
    with pytest.raises(ValueError, match="nvdec"), md.set_cuda_backend("vulkan"):
        pass


def test_set_cuda_backend_rejects_what_torchcodec_rejects():
    decoders = torchcodec_or_skip()
    for name in ("vulkan", ""):
        with pytest.raises(Exception) as theirs, decoders.set_cuda_backend(name):
            pass
        with pytest.raises(Exception) as ours, md.decoders.set_cuda_backend(name):
            pass
        assert isinstance(ours.value, type(theirs.value))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_set_cuda_backend_decodes_on_the_gpu(h264_mp4):
    need_backend("nvdec")
    ref = pyav_reference(h264_mp4.path)
    with md.set_cuda_backend("nvdec"):
        dec = md.VideoDecoder(h264_mp4.path, device="cuda", dimension_order="NHWC")
    assert dec.backend == "nvdec" and dec[0].device.type == "cuda"
    assert np.abs(dec[5].cpu().numpy().astype(int) - ref.frames[5]).max() <= 64


def test_nvdec_cache_capacity(monkeypatch):
    from mediadecode import cuda_options

    monkeypatch.setattr(cuda_options, "_nvdec_cache_capacity", cuda_options._nvdec_cache_capacity)
    if registry.unavailable_reason("torchcodec") is None:
        from torchcodec import decoders

        assert md.get_nvdec_cache_capacity() == decoders.get_nvdec_cache_capacity()  # 20
        with pytest.raises(Exception) as theirs:
            decoders.set_nvdec_cache_capacity(-1)
        expected = type(theirs.value)
    else:
        expected = RuntimeError  # torchcodec's check is in C++
    md.set_nvdec_cache_capacity(3)
    assert md.get_nvdec_cache_capacity() == 3
    md.decoders.set_nvdec_cache_capacity(torch.tensor(0))
    assert md.decoders.get_nvdec_cache_capacity() == 0
    with pytest.raises(expected):
        md.set_nvdec_cache_capacity(-1)
    with pytest.raises(ValueError):
        md.set_nvdec_cache_capacity(-1)
    with pytest.raises(TypeError):
        md.set_nvdec_cache_capacity(2.5)
    assert md.get_nvdec_cache_capacity() == 0


def test_integer_and_0d_tensor_indices_everywhere(h264_mp4):
    ref = pyav_reference(h264_mp4.path)
    t = torch.tensor
    with md.VideoDecoder(h264_mp4.path, dimension_order="NHWC") as dec:
        assert np.array_equal(dec[t(3)].numpy(), ref.frames[3])
        assert np.array_equal(dec[np.int64(-1)].numpy(), ref.frames[-1])
        assert np.array_equal(dec.get_frame_at(t(5)).data.numpy(), ref.frames[5])
        assert np.array_equal(dec.get_frames_at([t(2), 4, np.int32(6)]).data.numpy(), ref.frames[[2, 4, 6]])
        assert np.array_equal(dec.get_frames_at(t([1, 0])).data.numpy(), ref.frames[[1, 0]])
        batch = dec.get_frames_in_range(t(2), t(11), t(3))
        assert np.array_equal(batch.data.numpy(), ref.frames[2:11:3])
        when = float(ref.times[7])
        assert dec.get_frame_played_at(t(when, dtype=torch.float64)).pts_seconds == when
        assert dec.get_frames_played_at([t(when, dtype=torch.float64)]).pts_seconds.tolist() == [when]
        played = dec.get_frames_played_in_range(t(when, dtype=torch.float64),
                                                t(float(ref.times[9]), dtype=torch.float64))
        assert played.pts_seconds.tolist() == ref.times[7:9].tolist()
        with pytest.raises(TypeError):
            dec.get_frame_at(t(True))
        with pytest.raises(TypeError):
            dec.get_frame_at(t(1.5))


def test_tensor_indices_give_torchcodecs_frames(h264_mp4):
    decoders = torchcodec_or_skip()
    tc = decoders.VideoDecoder(str(h264_mp4.path))
    t = torch.tensor
    with md.VideoDecoder(h264_mp4.path) as dec:
        assert torch.equal(dec[t(4)], tc[4])  # torchcodec's [] takes ints only
        assert torch.equal(dec.get_frame_at(t(9)).data, tc.get_frame_at(t(9)).data)
        assert torch.equal(dec.get_frames_in_range(t(1), t(9), t(2)).data,
                           tc.get_frames_in_range(t(1), t(9), t(2)).data)
        assert torch.equal(dec.get_frames_at(t([3, 1])).data, tc.get_frames_at(t([3, 1])).data)


def test_cpu_fallback_text_as_torchcodec_words_it(h264_mp4):
    with md.VideoDecoder(h264_mp4.path) as dec:
        ours = dec.cpu_fallback
    assert not ours and ours.status_known
    if registry.unavailable_reason("torchcodec") is None:
        from torchcodec.decoders import VideoDecoder as TCDecoder

        theirs = TCDecoder(str(h264_mp4.path)).cpu_fallback
        assert str(ours) == str(theirs) and bool(ours) == bool(theirs)
    else:
        assert str(ours) == "[CPU] Fallback status: No fallback required"  # torchcodec 0.17's text


# -- fidelity on real files -----------------------------------------------------------------------


def _framemd5_pts(path: Path) -> list[float]:
    """The pts (seconds) of every frame FFmpeg's CLI decodes, from ``-f framemd5``."""
    ffmpeg = ffmpeg_cli_or_skip("ffmpeg")
    text = subprocess.run([ffmpeg, "-v", "error", "-i", str(path), "-map", "0:v:0",
                           "-f", "framemd5", "-"], check=True, capture_output=True, timeout=120).stdout.decode()
    tb = next(Fraction(line.split(":", 1)[1].strip()) for line in text.splitlines() if line.startswith("#tb 0"))
    return [float(int(line.split(",")[2]) * tb) for line in text.splitlines() if line and not line.startswith("#")]


def test_edit_list_fixture_discards_the_first_keyframe(edit_list_mp4):
    import av

    with av.open(str(edit_list_mp4)) as c:
        first = next(p for p in c.demux(c.streams.video[0]) if p.size)
        assert first.is_keyframe and first.is_discard


@pytest.mark.parametrize("backend", ["ffmpeg", "torchcodec"])
def test_edit_list_gives_ffmpegs_frames_and_count(edit_list_mp4, backend):
    need_backend(backend)
    if backend == "torchcodec":
        torchcodec_or_skip()
    ref = pyav_reference(edit_list_mp4)
    try:  # the FFmpeg CLI agrees with PyAV, where it runs
        cli_pts = _framemd5_pts(edit_list_mp4)
    except pytest.skip.Exception:
        cli_pts = ref.times
    assert len(ref) == len(cli_pts)
    with md.VideoDecoder(edit_list_mp4, backend=backend, dimension_order="NHWC") as dec:
        assert len(dec) == len(ref)
        batch = dec.get_frames_in_range(0, len(dec))
        assert np.array_equal(batch.data.numpy(), ref.frames)
        assert np.array_equal(batch.pts_seconds.numpy(), ref.times)
        assert np.allclose(batch.pts_seconds.numpy(), cli_pts, atol=1 / 48)
        assert np.array_equal(dec.get_frames_at([len(dec) - 1, 0]).data.numpy(), ref.frames[[-1, 0]])
    with md.VideoDecoder(edit_list_mp4, backend=backend, seek_mode="approximate",
                         dimension_order="NHWC") as approx:
        for k in (0, 5, len(ref) - 1):
            frame = approx.get_frame_played_at(float(ref.times[k]) + 0.001)
            assert frame.pts_seconds == pytest.approx(ref.times[k])
            assert np.array_equal(frame.data.numpy(), ref.frames[k])


@pytest.mark.parametrize("seek_mode", ["exact", "approximate"])
@pytest.mark.parametrize("backend", ["ffmpeg", "torchcodec"])
@pytest.mark.parametrize("name", FILES + ["edit_list.mp4"])
def test_played_in_range_shorter_than_a_frame(name, backend, seek_mode, generated_video, edit_list_mp4):
    """The frame on screen at ``start`` comes back even when ``[start, stop)`` holds no pts."""
    need_backend(backend)
    if backend == "torchcodec":
        torchcodec_or_skip()
    path = _media(name, generated_video, edit_list_mp4)
    if (name, backend, seek_mode) == ("vfr.mp4", "torchcodec", "approximate"):
        pytest.skip("torchcodec 0.17's approximate mode maps seconds to frame indices with the "
                    "header's frame rate (1000 fps for this VFR file) and fails past index 30")
    ref = pyav_reference(path)
    try:
        dec = md.VideoDecoder(path, backend=backend, seek_mode=seek_mode, dimension_order="NHWC")
    except md.InvalidMediaError as exc:
        pytest.skip(f"{backend} {seek_mode} does not open {name}: {exc}")
    with dec:
        for k in (0, 1, len(ref) // 2, len(ref) - 2):
            gap = ref.times[k + 1] - ref.times[k]
            for start in (ref.times[k], ref.times[k] + gap / 3):
                batch = dec.get_frames_played_in_range(float(start), float(start + gap / 4))
                assert len(batch) == 1, (k, start, batch.pts_seconds)
                assert batch.pts_seconds[0] == pytest.approx(ref.times[k])
                assert np.array_equal(batch.data[0].numpy(), ref.frames[k])


def test_decord_refuses_edit_lists_it_would_misread(edit_list_mp4):
    """decord decodes the packets an edit list discards as frames: it refuses such files (so
    automatic selection moves on) instead of returning frames off by the discarded count."""
    need_backend("decord")
    with pytest.raises(md.UnsupportedRequestError, match="edit list"):
        md.VideoDecoder(edit_list_mp4, backend="decord")


# -- error classes: what torchcodec raises for bad arguments, and ours ----------------------------

ERROR_CASES = {
    "bad seek mode": lambda D, f: D(f, seek_mode="fast"),
    "bad dimension order": lambda D, f: D(f, dimension_order="CHW"),
    "stream index out of range": lambda D, f: D(f, stream_index=7),
    "bad device": lambda D, f: D(f, device="nonsense"),
    "missing file": lambda D, f: D(f + ".missing.mp4"),
    "getitem past the end": lambda D, f: D(f)[1000],
    "getitem before the start": lambda D, f: D(f)[-1000],
    "getitem str": lambda D, f: D(f)["a"],
    "getitem float": lambda D, f: D(f)[1.5],
    "get_frame_at past the end": lambda D, f: D(f).get_frame_at(48),
    "get_frame_at tensor past the end": lambda D, f: D(f).get_frame_at(torch.tensor(48)),
    "get_frames_at past the end": lambda D, f: D(f).get_frames_at([0, 48]),
    "get_frames_at float": lambda D, f: D(f).get_frames_at([0.5]),
    "get_frames_in_range step 0": lambda D, f: D(f).get_frames_in_range(0, 5, 0),
    "get_frames_in_range negative step": lambda D, f: D(f).get_frames_in_range(0, 5, -1),
    "get_frame_played_at after the end": lambda D, f: D(f).get_frame_played_at(100.0),
    "get_frame_played_at before the start": lambda D, f: D(f).get_frame_played_at(-1.0),
    "get_frames_played_at after the end": lambda D, f: D(f).get_frames_played_at([0.0, 100.0]),
    "played_in_range reversed": lambda D, f: D(f).get_frames_played_in_range(1.0, 0.5),
    "played_in_range start after the end": lambda D, f: D(f).get_frames_played_in_range(100.0, 101.0),
    "played_in_range stop after the end": lambda D, f: D(f).get_frames_played_in_range(0.0, 100.0),
    "played_in_range fps 0": lambda D, f: D(f).get_frames_played_in_range(0.0, 1.0, fps=0),
    "get_all_frames negative fps": lambda D, f: D(f).get_all_frames(fps=-1),
}
# Errors raised by a method of an open decoder (not by argument checks before opening): ours
# name the file.
NAMES_THE_FILE = {n for n in ERROR_CASES if not n.startswith(("bad ", "stream ", "getitem str",
                                                               "getitem float", "get_frames_at float"))}


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_error_classes_match_torchcodecs(case, h264_mp4):
    decoders = torchcodec_or_skip()
    call = ERROR_CASES[case]
    path = str(h264_mp4.path)
    with pytest.raises(Exception) as theirs:
        call(decoders.VideoDecoder, path)
    with pytest.raises(Exception) as ours:
        call(md.VideoDecoder, path)
    # code that catches torchcodec's class catches ours
    assert isinstance(ours.value, type(theirs.value)), (type(ours.value), type(theirs.value))
    if case in NAMES_THE_FILE:
        assert Path(path).name in str(ours.value)


def test_audio_error_classes_match_torchcodecs(tmp_path):
    decoders = torchcodec_or_skip()
    from conftest import media_path

    path = str(media_path("sine_mono_s16.wav"))
    for call in (lambda D: D(path).get_samples_played_in_range(1.0, 0.5),
                 lambda D: D(path, num_channels=0),
                 lambda D: D(path, stream_index=5)):
        with pytest.raises(Exception) as theirs:
            call(decoders.AudioDecoder)
        with pytest.raises(Exception) as ours:
            call(md.AudioDecoder)
        assert isinstance(ours.value, type(theirs.value)), (type(ours.value), type(theirs.value))


def test_read_ffprobe_json_accepts_ffmpeg5_names():
    m = read_ffprobe_json('{"frames": [{"pkt_pts": 3, "pkt_duration": 2, "key_frame": 1},'
                          ' {"pkt_pts": 5, "pkt_duration": 2, "key_frame": 0}]}')
    assert (m.pts, m.durations, m.key_frames) == ((3, 5), (2, 2), (True, False))


def test_decoder_with_mappings_pickles_and_reopens(h264_mp4, monkeypatch):
    import pickle

    frames = ffprobe_frames(h264_mp4.path)
    dec = md.VideoDecoder(h264_mp4.path, custom_frame_mappings=json.dumps({"frames": frames}))
    clone = pickle.loads(pickle.dumps(dec))

    def no_scan(self):
        raise AssertionError("scanned although frame mappings were given")

    monkeypatch.setattr(FFmpegVideoReader, "_scan", no_scan)
    assert torch.equal(clone[7], dec[7]) and len(clone) == len(frames)
