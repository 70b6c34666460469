"""Backend discovery and selection, with fake backends registered through real entry points.

Order: ``backend=`` argument > ``use_backend()`` > ``MEDIADECODE_BACKEND`` > config file > automatic
(by priority). The fakes live in ``tests/_sel_fake_backend.py``; each test writes a ``*.dist-info``
directory with an ``entry_points.txt`` into its own temporary directory and puts it on ``sys.path``,
so discovery goes through :mod:`importlib.metadata` exactly as for an installed plugin.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import pickle
import subprocess
import sys
import threading
import wave
from pathlib import Path

import numpy as np
import pytest

from mediadecode import (
    AudioDecoder,
    BackendUnavailableError,
    InvalidMediaError,
    NoBackendError,
    UnknownBackendError,
    VideoDecoder,
    list_backends,
    registry,
    selection,
    use_backend,
)

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:  # the fake plugin modules live next to this file
    sys.path.insert(0, str(TESTS_DIR))

import _sel_fake_backend as fakes  # noqa: E402

FAKE = "_sel_fake_backend"


# --------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No selection set from outside the test; a fresh registry scan before and after."""
    monkeypatch.delenv("MEDIADECODE_BACKEND", raising=False)
    monkeypatch.setenv("MEDIADECODE_CONFIG", str(tmp_path / "no-such-config.toml"))
    fakes.CALLS.clear()
    registry._reset()
    yield
    registry._reset()
    fakes.CALLS.clear()


@pytest.fixture
def register(tmp_path, monkeypatch):
    """``register(name="module:Class", ...)``: install a distribution declaring those entry
    points in the ``mediadecode.backends`` group; returns the distribution's name."""
    counter = itertools.count()

    def _register(**entries: str) -> str:
        n = next(counter)
        site = tmp_path / f"site{n}"
        dist_name = f"mediadecode-sel-fake{n}"
        info = site / f"mediadecode_sel_fake{n}-0.1.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: 0.1\n"
        )
        lines = ["[mediadecode.backends]"] + [f"{k} = {v}" for k, v in entries.items()]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
        monkeypatch.syspath_prepend(str(site))
        registry._reset()
        return dist_name

    return _register


@pytest.fixture(scope="session")
def wav_file(tmp_path_factory) -> Path:
    """0.25 s of a 440 Hz sine, mono s16 at 8 kHz."""
    path = tmp_path_factory.mktemp("selection") / "tone.wav"
    t = np.arange(2000) / 8000
    pcm = np.round(0.5 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(pcm.tobytes())
    return path


@pytest.fixture(scope="session")
def video_file(tmp_path_factory) -> Path:
    """Five 32x32 frames of MPEG-4 Part 2 in MP4, encoded with PyAV."""
    av = pytest.importorskip("av")
    path = tmp_path_factory.mktemp("selection") / "tiny.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for i in range(5):
            img = np.full((32, 32, 3), 40 * i, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def auto_choice(media_type: str, device: str = "cpu", exclude: tuple[str, ...] = ()) -> str:
    """What automatic selection should pick: the first available row (highest priority) that
    decodes ``media_type`` on ``device``."""
    for row in list_backends():
        if row.available and media_type in row.media_types and device in row.devices:
            if row.name not in exclude:
                return row.name
    raise AssertionError("no backend available")


def served(name: str) -> list[tuple[str, str, str]]:
    return [call for call in fakes.CALLS if call[0] == name]


# --------------------------------------------------------------------------------------------
# discovery


def test_builtin_ffmpeg_backend_is_listed():
    rows = {row.name: row for row in list_backends()}
    assert "ffmpeg" in rows
    ffmpeg = rows["ffmpeg"]
    assert ffmpeg.available and ffmpeg.reason == ""
    assert ffmpeg.devices == ("cpu",)
    assert ffmpeg.priority == 100
    assert set(ffmpeg.media_types) == {"video", "audio"}
    assert ffmpeg.target == "mediadecode.backends.ffmpeg:FFmpegBackend"


def test_list_backends_rows_for_registered_plugins(register):
    dist = register(
        fake=f"{FAKE}:FakeBackend",
        fake2=f"{FAKE}:OtherFakeBackend",
        missingdep=f"{FAKE}:MissingDepBackend",
    )
    rows = list_backends()
    by_name = {row.name: row for row in rows}
    assert {"ffmpeg", "fake", "fake2", "missingdep"} <= set(by_name)
    for row in rows:  # every row has the documented fields, with the documented types
        assert isinstance(row.name, str)
        assert isinstance(row.available, bool)
        assert isinstance(row.reason, str)
        assert isinstance(row.devices, tuple)
        assert isinstance(row.priority, int)
        assert (row.reason == "") == row.available
    fake = by_name["fake"]
    assert (fake.available, fake.reason, fake.devices, fake.priority) == (True, "", ("cpu",), 10)
    assert fake.media_types == ("video", "audio")
    assert fake.target == f"{FAKE}:FakeBackend"
    assert fake.distribution == dist
    missing = by_name["missingdep"]
    assert missing.available is False
    assert "pip install nonexistent-decoder-lib" in missing.reason
    # Highest priority first.
    priorities = [row.priority for row in rows]
    assert priorities == sorted(priorities, reverse=True)
    assert [r.name for r in rows].index("ffmpeg") < [r.name for r in rows].index("fake")
    # Listing instantiates nothing and decodes nothing.
    assert fakes.CALLS == []


def test_registry_view_is_read_only(register):
    register(fake=f"{FAKE}:FakeBackend")
    view = registry.registry()
    assert view["fake"].target == f"{FAKE}:FakeBackend"
    with pytest.raises(TypeError):
        view["other"] = view["fake"]  # type: ignore[index]


def test_entry_point_cannot_replace_the_builtin_ffmpeg(register, wav_file):
    register(ffmpeg=f"{FAKE}:FakeBackend")
    with pytest.warns(RuntimeWarning, match="ffmpeg"):
        rows = list_backends()
    row = next(r for r in rows if r.name == "ffmpeg")
    assert row.target == "mediadecode.backends.ffmpeg:FFmpegBackend"
    assert AudioDecoder(wav_file, backend="ffmpeg").backend == "ffmpeg"
    assert fakes.CALLS == []


# --------------------------------------------------------------------------------------------
# automatic selection


def test_automatic_selection_uses_the_highest_priority(register, wav_file, video_file):
    register(fake=f"{FAKE}:FakeBackend")  # priority 10, below ffmpeg
    expected = auto_choice("audio")
    assert expected != "fake"
    decoder = AudioDecoder(wav_file)
    assert decoder.backend == expected
    assert selection.current_backend_choice().name is None
    assert served("fake") == []
    assert VideoDecoder(video_file).backend == auto_choice("video")


def test_automatic_selection_prefers_a_higher_priority_plugin(register, wav_file, video_file):
    register(fake=f"{FAKE}:FakeBackend")
    # Raise the fake above everything registered.
    top = max(row.priority for row in list_backends())
    original = fakes.FakeBackend.priority
    fakes.FakeBackend.priority = top + 1
    try:
        registry._reset()
        assert auto_choice("audio") == "fake"
        decoder = AudioDecoder(wav_file)
        assert decoder.backend == "fake"
        assert served("fake") == [("fake", "audio", str(wav_file))]
        assert VideoDecoder(video_file).backend == "fake"
        # It really decodes (through the ffmpeg readers it wraps).
        assert decoder.get_all_samples().data.shape == (1, 2000)
    finally:
        fakes.FakeBackend.priority = original


def test_automatic_selection_falls_back_when_a_backend_rejects_the_media(
    register, wav_file, video_file
):
    register(picky=f"{FAKE}:PickyBackend", fake=f"{FAKE}:FakeBackend")
    assert auto_choice("audio") == "picky"
    decoder = AudioDecoder(wav_file)
    assert served("picky") == [("picky", "audio", str(wav_file))]  # tried first
    assert decoder.backend == auto_choice("audio", exclude=("picky",))
    assert decoder.get_all_samples().data.shape == (1, 2000)
    video = VideoDecoder(video_file)
    assert video.backend == auto_choice("video", exclude=("picky",))
    assert len(video) == 5


def test_automatic_selection_falls_back_after_a_plugin_crash(register, wav_file):
    register(crashy=f"{FAKE}:CrashyBackend")
    decoder = AudioDecoder(wav_file)
    assert served("crashy") == [("crashy", "audio", str(wav_file))]
    assert decoder.backend == auto_choice("audio", exclude=("crashy",))


def test_all_backends_failing_raises_no_backend_error_listing_each(register):
    register(picky=f"{FAKE}:PickyBackend", fake=f"{FAKE}:FakeBackend")
    candidates = [
        row.name for row in list_backends()
        if row.available and "audio" in row.media_types and "cpu" in row.devices
    ]
    assert {"picky", "ffmpeg", "fake"} <= set(candidates)
    garbage = bytes(range(256)) * 16
    with pytest.raises(NoBackendError) as excinfo:
        AudioDecoder(garbage)
    err = excinfo.value
    assert isinstance(err, InvalidMediaError)
    # each one, in priority order; any other entry says why it was not tried: a fallback found
    # unavailable only when its turn came (torchcodec without FFmpeg's shared libraries), or an
    # FFmpeg-based fallback skipped once FFmpeg's probe found no media (never imported, so its
    # availability is not known)
    assert [n for n in err.attempts if n in candidates] == candidates
    assert all(n in candidates or why.startswith(("unavailable:", "not tried:"))
               for n, why in err.attempts.items()), err.attempts
    assert "picky handles no such media" in err.attempts["picky"]
    message = str(err)
    for name in candidates:
        assert f"{name}:" in message
    assert "4096 bytes" in message  # names the source
    assert [c[0] for c in fakes.CALLS] == ["picky", "fake"]


def test_not_media_is_not_handed_to_other_ffmpeg_based_backends(register):
    # FFmpeg's probe found no media: a backend declaring Capabilities.ffmpeg_based would probe
    # the same way, so it is listed as not tried; one built on something else is still tried.
    register(ffmpegish=f"{FAKE}:FFmpegBasedFakeBackend", fake=f"{FAKE}:FakeBackend")
    garbage = bytes(range(256)) * 16
    with pytest.raises(NoBackendError) as excinfo:
        VideoDecoder(garbage)
    err = excinfo.value
    assert "Invalid data" in err.attempts["ffmpeg"]
    assert err.attempts["ffmpegish"].startswith("not tried")
    assert served("ffmpegish") == []
    assert [c[0] for c in fakes.CALLS] == ["fake"]
    for name in ("torchcodec", "decord"):  # FFmpeg-based when installed
        if name in err.attempts:
            assert err.attempts[name].startswith("not tried")


def test_a_readable_file_still_falls_back_past_an_ffmpeg_based_refusal(register, wav_file):
    # The rule is about sources FFmpeg's probe rejects, not every InvalidMediaError.
    register(picky=f"{FAKE}:PickyBackend", ffmpegish=f"{FAKE}:FFmpegBasedFakeBackend")
    decoder = AudioDecoder(wav_file)
    assert served("picky") == [("picky", "audio", str(wav_file))]
    assert decoder.backend == auto_choice("audio", exclude=("picky",))


def test_a_library_value_error_at_open_hands_over_like_any_failure(register, wav_file):
    # Only a plain TypeError/ValueError (or a mediadecode error) is a wrong request raised at
    # once; a library's own subclass (PyAV's errors, UnicodeDecodeError) is about the bytes.
    register(rawerror=f"{FAKE}:RawErrorBackend")
    decoder = AudioDecoder(wav_file)
    assert served("rawerror") == [("rawerror", "audio", str(wav_file))]
    assert decoder.backend == auto_choice("audio", exclude=("rawerror",))
    with pytest.raises(UnicodeDecodeError):  # chosen explicitly: its own error, not substituted
        AudioDecoder(wav_file, backend="rawerror")


def test_single_candidate_failure_is_raised_as_is():
    # With only one backend there is nothing to list: its own error comes through.
    if len([r for r in list_backends() if r.available]) != 1:
        pytest.skip("more than one backend is installed here")
    with pytest.raises(InvalidMediaError) as excinfo:
        AudioDecoder(b"\x00" * 1000)
    assert not isinstance(excinfo.value, NoBackendError)


def test_unavailable_backends_are_skipped_automatically(register, wav_file):
    register(missingdep=f"{FAKE}:MissingDepBackend")
    decoder = AudioDecoder(wav_file)
    assert decoder.backend != "missingdep"
    assert served("missingdep") == []


def test_media_type_and_device_restrict_automatic_selection(register, wav_file, video_file):
    register(audioonly=f"{FAKE}:AudioOnlyBackend", cudaonly=f"{FAKE}:CudaOnlyBackend")
    assert AudioDecoder(wav_file).backend == "audioonly"  # highest priority for audio on cpu
    video = VideoDecoder(video_file)
    assert video.backend not in ("audioonly", "cudaonly")
    assert served("cudaonly") == []
    assert [c[1] for c in served("audioonly")] == ["audio"]


def test_explicit_backend_must_support_media_type_and_device(register, video_file):
    register(audioonly=f"{FAKE}:AudioOnlyBackend", cudaonly=f"{FAKE}:CudaOnlyBackend")
    with pytest.raises(ValueError, match="does not decode video"):
        VideoDecoder(video_file, backend="audioonly")
    with pytest.raises(ValueError, match="cpu"):
        VideoDecoder(video_file, backend="cudaonly")
    assert fakes.CALLS == []


# --------------------------------------------------------------------------------------------
# explicit choices and their precedence

LAYERS = ["argument", "context", "env", "config"]


def _write_config(path: Path, name: str) -> Path:
    path.write_text(f'# mediadecode settings\nbackend = "{name}"\n')
    return path


def _open_with(layers: dict[str, str], wav_file: Path, tmp_path: Path, monkeypatch):
    if "env" in layers:
        monkeypatch.setenv("MEDIADECODE_BACKEND", layers["env"])
    if "config" in layers:
        config = _write_config(tmp_path / "config.toml", layers["config"])
        monkeypatch.setenv("MEDIADECODE_CONFIG", str(config))
    with contextlib.ExitStack() as stack:
        if "context" in layers:
            stack.enter_context(use_backend(layers["context"]))
        return AudioDecoder(wav_file, backend=layers.get("argument"))


@pytest.mark.parametrize("layer", LAYERS)
def test_each_layer_alone_selects_its_backend(layer, register, wav_file, tmp_path, monkeypatch):
    register(fake=f"{FAKE}:FakeBackend")
    decoder = _open_with({layer: "fake"}, wav_file, tmp_path, monkeypatch)
    assert decoder.backend == "fake"
    assert served("fake") == [("fake", "audio", str(wav_file))]
    assert decoder.get_all_samples().data.shape == (1, 2000)


@pytest.mark.parametrize(
    "winner,loser", [(a, b) for i, a in enumerate(LAYERS) for b in LAYERS[i + 1:]]
)
@pytest.mark.parametrize("names", [("fake", "fake2"), ("fake2", "fake")])
def test_precedence(winner, loser, names, register, wav_file, tmp_path, monkeypatch):
    register(fake=f"{FAKE}:FakeBackend", fake2=f"{FAKE}:OtherFakeBackend")
    high, low = names
    decoder = _open_with({winner: high, loser: low}, wav_file, tmp_path, monkeypatch)
    assert decoder.backend == high
    assert [c[0] for c in fakes.CALLS] == [high]  # the other one was not even tried


def test_all_four_layers_at_once(register, wav_file, tmp_path, monkeypatch):
    register(fake=f"{FAKE}:FakeBackend", fake2=f"{FAKE}:OtherFakeBackend")
    layers = {"argument": "ffmpeg", "context": "fake", "env": "fake2", "config": "fake"}
    assert _open_with(layers, wav_file, tmp_path, monkeypatch).backend == "ffmpeg"
    assert fakes.CALLS == []


def test_explicit_choice_is_not_substituted_when_it_fails(register, wav_file):
    register(picky=f"{FAKE}:PickyBackend", crashy=f"{FAKE}:CrashyBackend")
    with pytest.raises(InvalidMediaError, match="picky handles no such media") as excinfo:
        AudioDecoder(wav_file, backend="picky")
    assert not isinstance(excinfo.value, NoBackendError)
    with use_backend("crashy"):
        with pytest.raises(RuntimeError, match="crashy exploded"):
            AudioDecoder(wav_file)
    assert [c[0] for c in fakes.CALLS] == ["picky", "crashy"]


def test_env_var_is_read_at_each_call(register, wav_file, monkeypatch):
    register(fake=f"{FAKE}:FakeBackend", fake2=f"{FAKE}:OtherFakeBackend")
    monkeypatch.setenv("MEDIADECODE_BACKEND", "fake")
    first = AudioDecoder(wav_file)
    monkeypatch.setenv("MEDIADECODE_BACKEND", "fake2")
    second = AudioDecoder(wav_file)
    monkeypatch.setenv("MEDIADECODE_BACKEND", "  ")  # blank: not set
    third = AudioDecoder(wav_file)
    monkeypatch.delenv("MEDIADECODE_BACKEND")
    fourth = AudioDecoder(wav_file)
    assert (first.backend, second.backend) == ("fake", "fake2")
    assert third.backend == fourth.backend == auto_choice("audio")
    # An open decoder keeps the backend it was opened with.
    assert first.backend == "fake" and first.get_all_samples().data.shape == (1, 2000)


def test_config_file_from_mediadecode_config(register, wav_file, tmp_path, monkeypatch):
    register(fake=f"{FAKE}:FakeBackend", fake2=f"{FAKE}:OtherFakeBackend")
    config = _write_config(tmp_path / "custom.toml", "fake")
    monkeypatch.setenv("MEDIADECODE_CONFIG", str(config))
    assert selection.config_path() == config
    choice = selection.current_backend_choice()
    assert choice.name == "fake" and str(config) in choice.origin
    assert AudioDecoder(wav_file).backend == "fake"
    _write_config(config, "fake2")  # read again at each call
    assert AudioDecoder(wav_file).backend == "fake2"
    config.write_text("# no backend key\nother = 1\n")
    assert AudioDecoder(wav_file).backend == auto_choice("audio")


def test_config_file_at_the_xdg_default(register, wav_file, tmp_path, monkeypatch):
    register(fake=f"{FAKE}:FakeBackend")
    monkeypatch.delenv("MEDIADECODE_CONFIG")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    default = tmp_path / "xdg" / "mediadecode" / "config.toml"
    assert selection.config_path() == default
    assert AudioDecoder(wav_file).backend == auto_choice("audio")  # no file yet
    default.parent.mkdir(parents=True)
    _write_config(default, "fake")
    assert AudioDecoder(wav_file).backend == "fake"


def test_config_file_in_home_when_no_xdg(register, wav_file, tmp_path, monkeypatch):
    register(fake=f"{FAKE}:FakeBackend")
    monkeypatch.delenv("MEDIADECODE_CONFIG")
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    default = tmp_path / "home" / ".config" / "mediadecode" / "config.toml"
    assert selection.config_path() == default
    default.parent.mkdir(parents=True)
    _write_config(default, "fake")
    assert AudioDecoder(wav_file).backend == "fake"


@pytest.mark.parametrize("text", ['backend = "unterminated\n', "backend = 3\n"])
def test_malformed_config_file_raises_value_error(text, wav_file, tmp_path, monkeypatch):
    config = tmp_path / "bad.toml"
    config.write_text(text)
    monkeypatch.setenv("MEDIADECODE_CONFIG", str(config))
    with pytest.raises(ValueError, match="bad.toml"):
        AudioDecoder(wav_file)


def test_pickled_decoder_reopens_with_the_same_backend(register, wav_file):
    register(fake=f"{FAKE}:FakeBackend")
    decoder = AudioDecoder(wav_file, backend="fake")
    clone = pickle.loads(pickle.dumps(decoder))
    assert clone.backend == "fake"
    assert clone.get_all_samples().data.shape == (1, 2000)
    assert [c[0] for c in fakes.CALLS] == ["fake", "fake"]


# --------------------------------------------------------------------------------------------
# unknown and unavailable backends


def test_unknown_backend_names_are_rejected_listing_known_ones(register, wav_file, monkeypatch):
    register(fake=f"{FAKE}:FakeBackend")
    for attempt in ("argument", "context", "env"):
        with pytest.raises(UnknownBackendError) as excinfo:
            if attempt == "argument":
                AudioDecoder(wav_file, backend="nope")
            elif attempt == "context":
                with use_backend("nope"):
                    pass  # pragma: no cover - raises on entry
            else:
                monkeypatch.setenv("MEDIADECODE_BACKEND", "nope")
                AudioDecoder(wav_file)
        err = excinfo.value
        assert isinstance(err, ValueError)
        assert "'nope'" in str(err)
        assert "ffmpeg" in str(err) and "fake" in str(err), attempt
    assert "MEDIADECODE_BACKEND" in str(err)  # says where the name came from


def test_unknown_backend_in_config_file_names_the_file(wav_file, tmp_path, monkeypatch):
    config = _write_config(tmp_path / "config.toml", "nope")
    monkeypatch.setenv("MEDIADECODE_CONFIG", str(config))
    with pytest.raises(UnknownBackendError, match="config.toml"):
        AudioDecoder(wav_file)


def test_use_backend_rejects_non_strings():
    with pytest.raises(TypeError):
        with use_backend(3):  # type: ignore[arg-type]
            pass  # pragma: no cover


def test_unavailable_backend_chosen_explicitly(register, wav_file, tmp_path, monkeypatch):
    register(missingdep=f"{FAKE}:MissingDepBackend")
    with pytest.raises(BackendUnavailableError) as excinfo:
        AudioDecoder(wav_file, backend="missingdep")
    assert isinstance(excinfo.value, ImportError)
    assert "pip install nonexistent-decoder-lib" in str(excinfo.value)
    with use_backend("missingdep"):  # registered, so entering is fine; opening is not
        with pytest.raises(BackendUnavailableError, match="use_backend"):
            AudioDecoder(wav_file)
    _write_config(tmp_path / "c.toml", "missingdep")
    monkeypatch.setenv("MEDIADECODE_CONFIG", str(tmp_path / "c.toml"))
    with pytest.raises(BackendUnavailableError, match="c.toml"):
        AudioDecoder(wav_file)
    assert fakes.CALLS == []


def test_plugin_that_fails_to_import_warns_and_is_listed_unavailable(register, wav_file):
    dist = register(broken="_sel_broken_backend:Backend", fake=f"{FAKE}:FakeBackend")
    with pytest.warns(RuntimeWarning, match="broken") as record:
        rows = list_backends()
    assert any("simulated failure" in str(w.message) for w in record)
    by_name = {row.name: row for row in rows}
    broken = by_name["broken"]
    assert broken.available is False
    assert "simulated failure" in broken.reason
    assert f"pip install {dist}" in broken.reason
    assert by_name["fake"].available and by_name["ffmpeg"].available
    # Everything else keeps working.
    assert AudioDecoder(wav_file).backend == auto_choice("audio")
    assert AudioDecoder(wav_file, backend="fake").backend == "fake"
    # Chosen explicitly: an ImportError with the pip command.
    with pytest.raises(BackendUnavailableError) as excinfo:
        AudioDecoder(wav_file, backend="broken")
    assert isinstance(excinfo.value, ImportError)
    assert "pip install" in str(excinfo.value)
    assert "simulated failure" in str(excinfo.value)


def test_broken_plugin_does_not_break_automatic_selection_without_listing(register, wav_file):
    # The first thing the user does is decode, not list: still only a warning.
    register(broken="_sel_broken_backend:Backend")
    with pytest.warns(RuntimeWarning, match="broken"):
        decoder = AudioDecoder(wav_file)
    assert decoder.backend == auto_choice("audio")


@pytest.mark.parametrize(
    "target,reason",
    [
        (f"{FAKE}:DoesNotExist", "DoesNotExist"),
        (f"{FAKE}:NoAttributesBackend", "lacks the attribute"),
        ("_sel_no_such_module_anywhere:Backend", "_sel_no_such_module_anywhere"),
    ],
)
def test_bad_entry_point_targets_are_unavailable_with_a_reason(register, target, reason, wav_file):
    register(bad=target)
    with pytest.warns(RuntimeWarning):
        rows = {row.name: row for row in list_backends()}
    assert rows["bad"].available is False
    assert reason in rows["bad"].reason
    assert AudioDecoder(wav_file).backend == auto_choice("audio")
    with pytest.raises(BackendUnavailableError):
        AudioDecoder(wav_file, backend="bad")


# --------------------------------------------------------------------------------------------
# use_backend(): scope


def test_use_backend_nests_and_restores(register, wav_file):
    register(fake=f"{FAKE}:FakeBackend", fake2=f"{FAKE}:OtherFakeBackend")
    auto = auto_choice("audio")
    with use_backend("fake") as name:
        assert name == "fake"
        assert AudioDecoder(wav_file).backend == "fake"
        with use_backend("fake2"):
            assert AudioDecoder(wav_file).backend == "fake2"
        assert AudioDecoder(wav_file).backend == "fake"
    assert AudioDecoder(wav_file).backend == auto
    with pytest.raises(KeyError):
        with use_backend("fake"):
            raise KeyError("boom")
    assert selection.current_backend_choice().name is None
    assert AudioDecoder(wav_file).backend == auto


def test_use_backend_does_not_leak_into_new_threads(register, wav_file):
    register(fake=f"{FAKE}:FakeBackend")
    auto = auto_choice("audio")
    # A new threading.Thread starts with an empty context (unless the interpreter is configured
    # to copy the creator's context into threads, as free-threaded builds of 3.14+ do).
    inherits = bool(getattr(sys.flags, "thread_inherit_context", False))
    seen = {}

    def work():
        seen["choice"] = selection.current_backend_choice().name
        seen["backend"] = AudioDecoder(wav_file).backend

    with use_backend("fake"):
        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
        assert AudioDecoder(wav_file).backend == "fake"
    expected = "fake" if inherits else auto
    assert seen["backend"] == expected
    assert seen["choice"] == ("fake" if inherits else None)


def test_use_backend_in_another_thread_does_not_affect_this_one(register, wav_file):
    register(fake=f"{FAKE}:FakeBackend")
    auto = auto_choice("audio")
    inside = threading.Event()
    release = threading.Event()
    seen = {}

    def work():
        with use_backend("fake"):
            inside.set()
            release.wait(timeout=30)
            seen["backend"] = AudioDecoder(wav_file).backend

    thread = threading.Thread(target=work)
    thread.start()
    try:
        assert inside.wait(timeout=30)
        # The other thread is inside its use_backend() block right now.
        assert AudioDecoder(wav_file).backend == auto
        assert selection.current_backend_choice().name is None
    finally:
        release.set()
        thread.join()
    assert seen["backend"] == "fake"


def test_use_backend_is_per_asyncio_task(register, wav_file):
    register(fake=f"{FAKE}:FakeBackend", fake2=f"{FAKE}:OtherFakeBackend")
    auto = auto_choice("audio")

    async def main():
        entered = 0
        all_inside = asyncio.Event()

        async def chosen(name):
            nonlocal entered
            with use_backend(name):
                entered += 1
                if entered == 2:
                    all_inside.set()
                await all_inside.wait()  # both tasks are inside their blocks now
                backend = AudioDecoder(wav_file).backend
                await asyncio.sleep(0)
                return backend, selection.current_backend_choice().name

        async def plain():
            await all_inside.wait()
            return AudioDecoder(wav_file).backend, selection.current_backend_choice().name

        return await asyncio.gather(chosen("fake"), chosen("fake2"), plain())

    results = asyncio.run(main())
    assert results == [("fake", "fake"), ("fake2", "fake2"), (auto, None)]
    assert selection.current_backend_choice().name is None


# --------------------------------------------------------------------------------------------
# importing is cheap


def test_import_loads_no_backend_and_reads_no_entry_points():
    code = (
        "import importlib.metadata as md\n"
        "real = md.entry_points\n"
        "groups = []\n"
        "def spy(*a, **k):\n"
        "    groups.append(k.get('group'))\n"
        "    return real(*a, **k)\n"
        "md.entry_points = spy\n"
        "import sys\n"
        "import mediadecode\n"
        "from mediadecode import registry\n"
        "assert 'av' not in sys.modules, 'av was imported'\n"
        "assert 'mediadecode.backends.ffmpeg' not in sys.modules, 'the backend was imported'\n"
        "assert registry._specs is None, 'entry points were scanned'\n"
        "# torch reads its own groups at import; ours must not have been read\n"
        "assert 'mediadecode.backends' not in groups, groups\n"
        "mediadecode.list_backends()  # control: the first use does read them, through the spy\n"
        "assert 'mediadecode.backends' in groups, groups\n"
        "print('ok')\n"
    )
    env = dict(os.environ)
    env.pop("MEDIADECODE_BACKEND", None)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_plain_import_then_first_use_scans_once():
    code = (
        "import sys, mediadecode\n"
        "from mediadecode import registry\n"
        "assert 'av' not in sys.modules and registry._specs is None\n"
        "names = [b.name for b in mediadecode.list_backends()]\n"
        "assert 'ffmpeg' in names, names\n"
        "assert registry._specs is not None\n"
        "specs = registry._specs\n"
        "mediadecode.list_backends()\n"
        "assert registry._specs is specs\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
