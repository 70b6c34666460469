"""The safety policy for untrusted media: which FFmpeg demuxers and protocols may run.

FFmpeg can follow references named inside a file (HLS and DASH playlists, ffconcat lists,
image-sequence patterns) and open network sessions or capture devices. mediadecode never lets it
do that for a source it did not check: local paths may use only FFmpeg's ``file`` protocol, every
other source (bytes, file objects, URLs read through fsspec) no protocol at all, and the
reference formats are refused through FFmpeg's ``format_whitelist`` unless the source allows
playlists. Text files, which FFmpeg's ``tty`` demuxer shows as ANSI art, are not media.

Every backend that hands a source to an FFmpeg (PyAV's, torchcodec's) applies this policy through
:func:`mediadecode.pyav.open_container` or :func:`mediadecode.pyav.refuse_unsafe_formats`. The
threat model is in ``docs/remote.md`` and ``docs/reliability.md``.
"""

from __future__ import annotations

from .errors import UnsafeMediaError
from .sources import Source

__all__ = ["NOT_MEDIA_FORMATS", "demuxer_whitelist", "open_options", "refusal"]

# Demuxers that "succeed" on files that are not media: any *.txt opens as ANSI art.
NOT_MEDIA_FORMATS = {"tty": "a text file rendered as ANSI art"}

# Demuxers that make FFmpeg open other resources named inside the input (or next to it): refused
# unless the source allows playlists (Source.allow_playlists). See docs/remote.md.
_REFERENCE_FORMATS = {
    "hls": "an HLS playlist (m3u8)",
    "dash": "a DASH manifest (mpd)",
    "concat": "an ffconcat list",
    "imf": "an IMF composition playlist",
    "webm_dash_manifest": "a WebM DASH manifest",
    "image2": "an image sequence named by a file-name pattern",
    "vobsub": "a VobSub index (opens the .sub file next to it)",
}
# Demuxers never allowed: network sessions and capture devices (not media files at all).
_NEVER_FORMATS = {
    "sdp": "an SDP session description (opens network streams)",
    "rtsp": "an RTSP session", "rtp": "an RTP stream", "sap": "a SAP announcement",
    "lavfi": "a libavfilter graph", "avisynth": "an AviSynth script",
    "vapoursynth": "a VapourSynth script", "alsa": "a capture device", "oss": "a capture device",
    "fbdev": "a capture device", "kmsgrab": "a capture device", "x11grab": "a capture device",
    "v4l2": "a capture device", "video4linux2": "a capture device",
}
# First bytes of reference formats, to name the format in the refusal message.
_REFERENCE_MAGIC = (
    (b"#EXTM3U", "hls"), (b"ffconcat version", "concat"), (b"v=0", "sdp"), (b"<MPD", "dash"),
    (b"# VobSub index file", "vobsub"),
)


def demuxer_whitelist(allow_playlists: bool) -> tuple[str, str]:
    """``(allowed, refused)``: comma-separated names of FFmpeg's demuxers, for the
    ``format_whitelist`` option (FFmpeg refuses a probed format that is not listed, before the
    demuxer reads anything)."""
    key = bool(allow_playlists)
    cached = _WHITELISTS.get(key)
    if cached is None:
        import av
        from av.format import ContainerFormat

        excluded = set(_NEVER_FORMATS) | (set() if allow_playlists else set(_REFERENCE_FORMATS))
        allowed: set[str] = set()
        refused: set[str] = set()
        for name in av.formats_available:
            try:
                full = ContainerFormat(name, "r").name
            except Exception:
                continue  # a muxer only
            (refused if set(full.split(",")) & excluded else allowed).add(full)
        cached = _WHITELISTS[key] = (",".join(sorted(allowed)), ",".join(sorted(refused)))
    return cached


_WHITELISTS: dict[bool, tuple[str, str]] = {}


def open_options(source: Source) -> dict[str, str]:
    """FFmpeg options that keep FFmpeg from opening anything but the source itself: a local
    path may use the ``file`` protocol (which playlists allowed by ``allow_playlists`` then
    use too); bytes, file objects and URLs get no protocol at all (a URL is read only through
    its fsspec transport); playlist-type demuxers are off unless allowed, devices and network
    sessions always."""
    if source.is_remote:
        protocols = "none"
    elif source.local_path is not None or source.allow_playlists:
        protocols = "file"
    else:
        protocols = "none"
    allowed, _ = demuxer_whitelist(source.allow_playlists)
    return {"protocol_whitelist": protocols, "format_whitelist": allowed}


def refusal(source: Source) -> Exception | None:
    """After FFmpeg refused a source with EINVAL: the UnsafeMediaError to raise when it was
    refused for its format (probed again with only the refused demuxers allowed and no
    protocol, so no reference can be followed), or None when the EINVAL had another cause."""
    import av
    _, refused = demuxer_whitelist(source.allow_playlists)
    fobj = source.open_binary()
    fmt = None
    try:
        head = fobj.read(64)
        fobj.seek(0)
        sniffed = next(
            (name for magic, name in _REFERENCE_MAGIC if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(magic)),
            "",
        )
        try:
            with av.open(fobj, mode="r", metadata_errors="ignore",
                         options={"protocol_whitelist": "none", "format_whitelist": refused}) as c:
                fmt = c.format.name
        except av.FFmpegError as exc:
            # EINVAL again: not on this whitelist either, or a refused demuxer that failed to
            # open a reference (the nested open of a concat list gives EINVAL too): decided
            # by the first bytes. Any other error comes from a refused demuxer's own header.
            if getattr(exc, "errno", None) == 22 and not sniffed:
                return None  # the EINVAL was about the media itself
            fmt = sniffed
    finally:
        if source.owns_file:
            fobj.close()
    names = fmt.split(",") if fmt else []
    desc = next((_REFERENCE_FORMATS.get(n) or _NEVER_FORMATS.get(n) for n in names
                 if n in _REFERENCE_FORMATS or n in _NEVER_FORMATS), "a playlist-type format")
    never = any(n in _NEVER_FORMATS for n in names)
    shown = f" ('{fmt}' demuxer)" if fmt else ""
    fix = (
        "mediadecode never opens it" if never else
        "mediadecode does not open such formats by default; for a trusted local file pass "
        "allow_playlists=True (see docs/remote.md)"
    )
    return UnsafeMediaError(
        f"{source.name}: refused: FFmpeg reads it as {desc}{shown}, a format that makes FFmpeg "
        f"open other files, devices or network addresses named inside it; {fix}"
    )
