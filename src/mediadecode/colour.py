"""YUV 4:2:0 to RGB on any torch device, matching FFmpeg's own ``rgb24`` conversion.

The ffmpeg backend converts decoded frames with FFmpeg's libswscale (PyAV
``frame.reformat(format="rgb24")``). Backends that decode on a GPU (``nvdec``) get NV12 / P010
planes in GPU memory; this module converts them with torch operations, batched, to the same
pixels. The arithmetic is libswscale's own (the x86 build that PyAV's wheels ship), written with
integer tensor operations, so that on the real test files the result is bit-identical to
``frame.to_ndarray(format="rgb24")``.

What libswscale does for a 4:2:0 frame converted to ``rgb24`` at the same size (PyAV's default
``SWS_BILINEAR`` flags), and what :func:`yuv420_to_rgb` therefore does:

- **8-bit frames of even height** take swscale's "unscaled special converter" (``yuv2rgb``,
  SIMD): nearest-neighbour chroma (each chroma sample covers a 2x2 block of luma), 16-bit
  fixed-point arithmetic with the coefficients in Q13 and ``pmulhw`` (multiply, keep the high 16
  bits, i.e. round towards minus infinity).
- **Every other frame** (odd height, or more than 8 bits per sample) takes swscale's generic
  scaler, even though nothing is scaled: chroma is resampled vertically from ``ceil(H/2)`` rows
  to ``H`` rows with its bilinear filter (sample centres aligned, 12-bit weights; nearest sample
  when there are fewer than 4 chroma rows), then

  - for an even width, each chroma sample serves two pixels of a row and the RGB values come
    from swscale's lookup tables (``ff_yuv2rgb_c_init_tables``);
  - for an odd width swscale forces full chroma interpolation: chroma is also resampled
    horizontally (bilinear, 14-bit weights) and converted with 22-bit fixed point.

Colour matrices are FFmpeg's ``ff_yuv2rgb_coeffs`` (the inverse matrices in 16.16 fixed point,
picked from the frame's ``colorspace`` tag as ``sws_getCoefficients`` does: an unspecified
colorspace is BT.601); the range is the frame's ``color_range`` (limited ``"tv"`` unless tagged
full ``"pc"``, or a ``yuvj`` pixel format).

Limits: 4:2:0 only (NV12, P010/P016, planar ``yuv420p*``); other tags than BT.601/709/2020,
SMPTE 240M and FCC are treated as BT.601, as swscale does.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import Tensor

__all__ = [
    "MATRICES",
    "RANGES",
    "yuv420_to_rgb",
    "nv12_to_rgb",
    "p010_to_rgb",
    "matrix_for_colorspace",
    "range_for_frame",
]

# FFmpeg's ff_yuv2rgb_coeffs (libswscale/yuv2rgb.c): (crv, cbu, cgu, cgv), the inverse matrix
# entries for limited-range chroma, in 16.16 fixed point.
_INV_COEFFS = {
    "bt601": (104597, 132201, 25675, 53279),
    "bt709": (117489, 138438, 13975, 34925),
    "fcc": (104448, 132798, 24759, 53109),
    "smpte240m": (117579, 136230, 16907, 35559),
    "bt2020": (110013, 140363, 12277, 42626),
}

MATRICES = tuple(_INV_COEFFS)
"""Colour matrices :func:`yuv420_to_rgb` knows (FFmpeg's names, ``bt2020`` meaning BT.2020 NCL)."""

RANGES = ("tv", "pc")
"""``"tv"``: limited range (luma 16-235, chroma 16-240 at 8 bits); ``"pc"``: full range."""

# AVColorSpace value -> matrix, as sws_getCoefficients maps it (out-of-table values: BT.601).
_COLORSPACE_MATRIX = {1: "bt709", 4: "fcc", 7: "smpte240m", 9: "bt2020", 10: "bt2020"}


def matrix_for_colorspace(colorspace) -> str:
    """The matrix swscale uses for a frame's ``colorspace`` tag.

    Args:
        colorspace: an ``AVColorSpace`` value (``frame.colorspace``, an int or int-like enum) or
            None. Unspecified, unknown, RGB and YCgCo tags give ``"bt601"``, as swscale does.

    Returns:
        one of :data:`MATRICES`.
    """
    try:
        value = int(colorspace)
    except (TypeError, ValueError):
        return "bt601"
    return _COLORSPACE_MATRIX.get(value, "bt601")


def range_for_frame(color_range, pixel_format: str | None = None) -> str:
    """``"pc"`` for a frame tagged full range (``AVCOL_RANGE_JPEG``, 2) or with a ``yuvj``
    pixel format, else ``"tv"`` (swscale treats an unspecified range as limited)."""
    if pixel_format is not None and str(pixel_format).startswith("yuvj"):
        return "pc"
    try:
        return "pc" if int(color_range) == 2 else "tv"
    except (TypeError, ValueError):
        return "tv"


def _cdiv(a: int, b: int) -> int:
    """C integer division (truncates towards zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _round_to_int16(f: int) -> int:
    """libswscale's roundToInt16 (the result read back as a signed 16-bit value)."""
    r = (f + (1 << 15)) >> 16
    if r < -0x7FFF:
        return -0x8000
    return min(r, 0x7FFF)


@dataclass(frozen=True)
class _Coeffs:
    # SIMD special converter (Q13, offsets at Q3)
    y: int
    yo: int
    vr: int
    ub: int
    vg: int
    ug: int
    # lookup tables (chroma steps in luma-code units, 16.16) and their luma scale
    t_crv: int
    t_cbu: int
    t_cgu: int
    t_cgv: int
    cy: int
    oy: int
    table_offset: int
    # full-chroma output (Q13 coefficients, luma offset at Q9)
    f_yo: int


@lru_cache(maxsize=None)
def _coeffs(matrix: str, color_range: str) -> _Coeffs:
    """swscale's integer coefficients (sws_setColorspaceDetails -> ff_yuv2rgb_c_init_tables with
    brightness 0, contrast and saturation 1)."""
    crv, cbu, cgu, cgv = _INV_COEFFS[matrix]
    cgu, cgv = -cgu, -cgv
    full = color_range == "pc"
    cy, oy = 1 << 16, 0
    if not full:
        cy = (cy * 255) // 219
        oy = 16 << 16
    else:
        crv, cbu = _cdiv(crv * 224, 255), _cdiv(cbu * 224, 255)
        cgu, cgv = _cdiv(cgu * 224, 255), _cdiv(cgv * 224, 255)
    return _Coeffs(
        y=_round_to_int16(cy << 13),
        yo=_round_to_int16(oy << 3),
        vr=_round_to_int16(crv << 13),
        ub=_round_to_int16(cbu << 13),
        vg=_round_to_int16(cgv << 13),
        ug=_round_to_int16(cgu << 13),
        t_crv=_cdiv((crv << 16) + 0x8000, cy),
        t_cbu=_cdiv((cbu << 16) + 0x8000, cy),
        t_cgu=_cdiv((cgu << 16) + 0x8000, cy),
        t_cgv=_cdiv((cgv << 16) + 0x8000, cy),
        cy=cy,
        oy=oy,
        table_offset=384 if full else 326,
        f_yo=_round_to_int16(oy << 9),
    )


@lru_cache(maxsize=256)
def _filter(n_src: int, n_dst: int, one: int) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """swscale's bilinear resampling filter from ``n_src`` to ``n_dst`` samples (centres aligned),
    as two taps per output sample: ``(index0, index1, weight1)`` with weights summing to ``one``.

    Mirrors libswscale's initFilter for SWS_BILINEAR upscaling: the increment is
    ``((n_src << 16) + n_dst / 2) / n_dst``; with fewer than 4 source samples the filter has a
    single tap (nearest sample); at the edges the weight outside the picture moves to the edge
    sample; weights are rounded to ``one`` with the first tap rounded first.
    """
    if n_src == n_dst:
        idx = tuple(range(n_dst))
        return idx, idx, (0,) * n_dst
    inc = ((n_src << 16) + (n_dst >> 1)) // n_dst
    single_tap = min(3, n_src - 2) <= 1
    i0s, i1s, w1s = [], [], []
    for j in range(n_dst):
        pos = inc - (1 << 16) + j * 2 * inc  # source position of output centre j, units of 2^-17
        if single_tap:
            k = min(max((pos + (1 << 16)) >> 17, 0), n_src - 1)
            i0s.append(k)
            i1s.append(k)
            w1s.append(0)
            continue
        i0 = pos >> 17
        frac = pos - (i0 << 17)
        w0 = (((1 << 17) - frac) * one + (1 << 16)) >> 17
        i0s.append(min(max(i0, 0), n_src - 1))
        i1s.append(min(max(i0 + 1, 0), n_src - 1))
        w1s.append(one - w0)
    return tuple(i0s), tuple(i1s), tuple(w1s)


@lru_cache(maxsize=64)
def _filter_tensors(n_src: int, n_dst: int, one: int, device: torch.device):
    i0, i1, w1 = _filter(n_src, n_dst, one)
    return (
        torch.tensor(i0, dtype=torch.long, device=device),
        torch.tensor(i1, dtype=torch.long, device=device),
        torch.tensor(w1, dtype=torch.int32, device=device),
    )


def _resample(plane: Tensor, dim: int, n_dst: int, one: int) -> Tensor:
    """``sum(plane[i_k] * w_k)`` along ``dim`` with swscale's 2-tap bilinear filter, in the
    plane's integer dtype, not normalised (the weights sum to ``one``)."""
    i0, i1, w1 = _filter_tensors(plane.shape[dim], n_dst, one, plane.device)
    shape = [1] * plane.ndim
    shape[dim] = n_dst
    w1 = w1.view(shape)
    a = plane.index_select(dim, i0)
    b = plane.index_select(dim, i1)
    return a * (one - w1) + b * w1


def _special(y: Tensor, u: Tensor, v: Tensor, k: _Coeffs, out: Tensor) -> None:
    """8-bit, even height: swscale's SIMD yuv420p -> rgb24 converter."""
    n, h, w = y.shape
    yl = (((y.to(torch.int32) << 3) - k.yo) * k.y) >> 16
    ui = (u.to(torch.int32) << 3) - 1024
    vi = (v.to(torch.int32) << 3) - 1024
    chroma = torch.stack(
        ((vi * k.vr) >> 16, ((ui * k.ug) >> 16) + ((vi * k.vg) >> 16), (ui * k.ub) >> 16), dim=-1
    )  # (N, ceil(H/2), ceil(W/2), 3)
    ch, cw = chroma.shape[1:3]
    chroma = chroma[:, :, None, :, None, :].expand(n, ch, 2, cw, 2, 3).reshape(n, 2 * ch, 2 * cw, 3)
    out.copy_((yl[..., None] + chroma[:, :h, :w]).clamp_(0, 255))


def _tables(y: Tensor, u: Tensor, v: Tensor, bits: int, k: _Coeffs, out: Tensor) -> None:
    """Generic scaler, even width: vertical bilinear chroma, swscale's RGB lookup tables."""
    n, h, w = y.shape
    shift = 15 - bits
    # yuv2rgb_X: 15-bit samples times 12-bit vertical weights, rounded to 8 bits
    y8 = ((y.to(torch.int32) << (shift + 12)) + (1 << 18)) >> 19
    u8 = (_resample(u.to(torch.int32) << shift, 1, h, 4096) + (1 << 18)) >> 19
    v8 = (_resample(v.to(torch.int32) << shift, 1, h, 4096) + (1 << 18)) >> 19
    # the chroma tables are indexed with av_clip_uint8(value)
    u8, v8 = u8.clamp_(0, 255), v8.clamp_(0, 255)
    tr = ((v8 * k.t_crv) >> 16) - (k.t_crv >> 9)
    tg = ((u8 * k.t_cgu) >> 16) - (k.t_cgu >> 9) + ((v8 * k.t_cgv) >> 16) - (k.t_cgv >> 9)
    tb = ((u8 * k.t_cbu) >> 16) - (k.t_cbu >> 9)
    chroma = torch.stack((tr, tg, tb), dim=-1)  # (N, H, ceil(W/2), 3)
    cw = chroma.shape[2]
    chroma = chroma[:, :, :, None, :].expand(n, h, cw, 2, 3).reshape(n, h, 2 * cw, 3)[:, :, :w]
    base = k.table_offset + y8
    rgb = ((base[..., None] + chroma) * k.cy - (384 << 16) - k.oy + 0x8000) >> 16
    out.copy_(rgb.clamp_(0, 255))


def _full(y: Tensor, u: Tensor, v: Tensor, bits: int, k: _Coeffs, out: Tensor) -> None:
    """Generic scaler, odd width: full chroma interpolation (bilinear in both directions) and
    swscale's 22-bit fixed-point output (yuv2rgb_full_2 / yuv2rgb_write_full)."""
    n, h, w = y.shape
    y15 = y.to(torch.int64) << (15 - bits)
    # horizontal: src * 14-bit weights >> (bits - 1) gives 15-bit chroma
    u15 = _resample(u.to(torch.int64), 2, w, 1 << 14) >> (bits - 1)
    v15 = _resample(v.to(torch.int64), 2, w, 1 << 14) >> (bits - 1)
    uq = (_resample(u15, 1, h, 4096) - (128 << 19)) >> 10
    vq = (_resample(v15, 1, h, 4096) - (128 << 19)) >> 10
    yq = ((y15 << 2) - k.f_yo) * k.y + (1 << 21)
    # Q13 coefficients of the full-chroma writer (yuv2rgb_*_coeff) equal the SIMD ones.
    r = yq + vq * k.vr
    g = yq + vq * k.vg + uq * k.ug
    b = yq + uq * k.ub
    rgb = torch.stack((r, g, b), dim=-1)
    # swscale computes in 32-bit unsigned arithmetic: an overflow wraps (to black) before the
    # clip, which only out-of-range input (luma above white with strong chroma) reaches
    rgb = ((rgb + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)
    rgb = rgb.clamp_(0, (1 << 30) - 1) >> 22
    out.copy_(rgb)


def _batched(t: Tensor, ndim: int, name: str) -> tuple[Tensor, bool]:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.ndim == ndim - 1:
        return t.unsqueeze(0), True
    if t.ndim != ndim:
        raise ValueError(f"{name} must have {ndim - 1} or {ndim} dimensions, got shape {tuple(t.shape)}")
    return t, False


def _fit_chroma(c: Tensor, ch: int, cw: int) -> Tensor:
    """Crop chroma planes larger than ``(ch, cw)`` (coded-size padding); extend smaller ones by
    repeating the last row/column (exporters that round ``H/2`` down for odd sizes)."""
    c = c[:, :ch, :cw]
    if c.shape[1] < ch:
        if c.shape[1] == 0:
            raise ValueError("chroma plane has no rows")
        c = torch.cat([c, c[:, -1:].expand(-1, ch - c.shape[1], -1)], dim=1)
    if c.shape[2] < cw:
        if c.shape[2] == 0:
            raise ValueError("chroma plane has no columns")
        c = torch.cat([c, c[:, :, -1:].expand(-1, -1, cw - c.shape[2])], dim=2)
    return c


def yuv420_to_rgb(
    y: Tensor,
    u: Tensor,
    v: Tensor,
    *,
    matrix: str = "bt601",
    color_range: str = "tv",
    bit_depth: int = 8,
    out: Tensor | None = None,
) -> Tensor:
    """Convert planar 4:2:0 frames to RGB exactly as FFmpeg's swscale does (see module doc).

    Runs on the device of the inputs (CPU or CUDA), batched, with integer tensor operations.

    Args:
        y: luma, ``(N, H, W)`` or ``(H, W)``; any integer dtype (``uint8`` for 8 bits,
            ``int16``/``uint16``/``int32`` for more), samples LSB-aligned (``0 .. 2**bit_depth-1``).
        u, v: chroma, ``(N, ceil(H/2), ceil(W/2))`` (or without ``N``), same dtype rules. Larger
            planes are cropped; planes one row/column short (an exporter that rounds ``H/2``
            down) are extended by repeating their last row/column.
        matrix: one of :data:`MATRICES` (see :func:`matrix_for_colorspace`).
        color_range: ``"tv"`` (limited) or ``"pc"`` (full); see :func:`range_for_frame`.
        bit_depth: bits per sample, 8 to 14 (8 for yuv420p/NV12, 10 for P010, 12 for P016
            holding 12-bit video).
        out: optional ``uint8`` tensor ``(N, H, W, 3)`` on the same device to write into.

    Returns:
        ``torch.uint8`` RGB, ``(N, H, W, 3)`` (``(H, W, 3)`` for 2-D inputs), on the inputs'
        device.

    Raises:
        ValueError: unknown ``matrix``/``color_range``, unsupported ``bit_depth``, shapes that do
            not match, inputs on different devices, or a wrong ``out``.
        TypeError: inputs that are not tensors, or floating-point inputs.
    """
    if matrix not in _INV_COEFFS:
        raise ValueError(f"unknown matrix {matrix!r}; known: {', '.join(MATRICES)}")
    if color_range not in RANGES:
        raise ValueError(f"color_range must be 'tv' or 'pc', got {color_range!r}")
    if isinstance(bit_depth, bool) or not isinstance(bit_depth, int) or not 8 <= bit_depth <= 14:
        raise ValueError(f"bit_depth must be an int from 8 to 14, got {bit_depth!r}")
    y, squeeze = _batched(y, 3, "y")
    u, _ = _batched(u, 3, "u")
    v, _ = _batched(v, 3, "v")
    for name, t in (("y", y), ("u", u), ("v", v)):
        if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
            raise TypeError(f"{name} must hold integers, got {t.dtype}")
        if t.device != y.device:
            raise ValueError(f"{name} is on {t.device} but y is on {y.device}")
    n, h, w = y.shape
    if u.shape[0] != n or v.shape[0] != n:
        raise ValueError(f"batch sizes differ: y {n}, u {u.shape[0]}, v {v.shape[0]}")
    ch, cw = (h + 1) // 2, (w + 1) // 2
    u, v = _fit_chroma(u, ch, cw), _fit_chroma(v, ch, cw)
    expected = (n, h, w, 3) if not squeeze else (h, w, 3)
    if out is None:
        out = torch.empty(expected, dtype=torch.uint8, device=y.device)
    elif (
        out.dtype != torch.uint8
        or tuple(out.shape) != expected
        or out.device != y.device
        or not out.is_contiguous()
    ):
        raise ValueError(
            f"out must be a contiguous uint8 tensor of shape {expected} on {y.device}, "
            f"got {out.dtype} {tuple(out.shape)} on {out.device}"
        )
    result = out
    out = out.view(n, h, w, 3)
    if n and h and w:
        k = _coeffs(matrix, color_range)
        if bit_depth == 8 and h % 2 == 0:
            _special(y, u, v, k, out)
        elif w % 2 == 1:
            _full(y, u, v, bit_depth, k, out)
        else:
            _tables(y, u, v, bit_depth, k, out)
    return result


def nv12_to_rgb(
    y: Tensor,
    uv: Tensor,
    *,
    matrix: str = "bt601",
    color_range: str = "tv",
    out: Tensor | None = None,
) -> Tensor:
    """NV12 (8-bit luma plane and interleaved UV plane) to RGB, as FFmpeg converts the same
    frame decoded as ``yuv420p``.

    Args:
        y: ``uint8`` ``(N, H, W)`` or ``(H, W)``.
        uv: ``uint8`` ``(N, ceil(H/2), ceil(W/2), 2)`` (or without ``N``): U then V per sample.
        matrix, color_range, out: as :func:`yuv420_to_rgb`.

    Returns:
        ``torch.uint8`` ``(N, H, W, 3)`` (or ``(H, W, 3)``).

    Raises:
        ValueError, TypeError: as :func:`yuv420_to_rgb`; ``uv`` without a last dimension of 2.
    """
    if not isinstance(uv, Tensor) or uv.shape[-1:] != (2,):
        raise ValueError(f"uv must be a tensor whose last dimension is 2, got {getattr(uv, 'shape', uv)}")
    return yuv420_to_rgb(
        y, uv[..., 0], uv[..., 1], matrix=matrix, color_range=color_range, bit_depth=8, out=out
    )


def p010_to_rgb(
    y: Tensor,
    uv: Tensor,
    *,
    matrix: str = "bt601",
    color_range: str = "tv",
    bit_depth: int = 10,
    out: Tensor | None = None,
) -> Tensor:
    """P010 / P016 (16-bit containers, samples in the high ``bit_depth`` bits, interleaved UV)
    to RGB, as FFmpeg converts the same frame decoded as ``yuv420p10le`` (``yuv420p12le``).

    Args:
        y: ``(N, H, W)`` or ``(H, W)``, ``uint16``/``int16``/``int32`` holding the 16-bit words.
        uv: ``(N, ceil(H/2), ceil(W/2), 2)`` (or without ``N``), same dtype.
        bit_depth: significant bits (10 for P010, 12 for 12-bit video in P016).
        matrix, color_range, out: as :func:`yuv420_to_rgb`.

    Returns:
        ``torch.uint8`` ``(N, H, W, 3)`` (or ``(H, W, 3)``).

    Raises:
        ValueError, TypeError: as :func:`yuv420_to_rgb`.
    """
    if not isinstance(uv, Tensor) or uv.shape[-1:] != (2,):
        raise ValueError(f"uv must be a tensor whose last dimension is 2, got {getattr(uv, 'shape', uv)}")
    if isinstance(bit_depth, bool) or not isinstance(bit_depth, int) or not 8 <= bit_depth <= 14:
        raise ValueError(f"bit_depth must be an int from 8 to 14, got {bit_depth!r}")
    shift = 16 - bit_depth
    y32 = (y.to(torch.int32) & 0xFFFF) >> shift
    uv32 = (uv.to(torch.int32) & 0xFFFF) >> shift
    return yuv420_to_rgb(
        y32, uv32[..., 0], uv32[..., 1], matrix=matrix, color_range=color_range,
        bit_depth=bit_depth, out=out,
    )
