"""Small ICC v2 profiles written byte by byte, for tests of colour management.

Pillow can only create sRGB, Lab and XYZ profiles, and no CMYK or grey profile ships with the
packages here, so the tests build the two they need from the ICC specification (ICC.1:2001-04):
a grey display profile with a single gamma curve, and a CMYK printer profile whose colours are a
2x2x2x2 lookup table of Lab values, chosen so that a profile-blind reading gives different colours.
"""
from __future__ import annotations

import struct

_D50 = (0.9642, 1.0, 0.8249)


def _s15(v: float) -> bytes:
    return struct.pack(">i", round(v * 65536))


def _xyz(xyz: tuple[float, float, float]) -> bytes:
    return b"XYZ " + bytes(4) + b"".join(_s15(v) for v in xyz)


def _desc(text: str) -> bytes:
    ascii_ = text.encode("ascii") + b"\0"
    # ASCII description, then empty Unicode and ScriptCode descriptions (67 bytes of the latter's buffer).
    return b"desc" + bytes(4) + struct.pack(">I", len(ascii_)) + ascii_ + struct.pack(">II", 0, 0) + struct.pack(">HB", 0, 0) + bytes(67)


def _profile(device_class: bytes, colour_space: bytes, pcs: bytes, tags: dict[bytes, bytes]) -> bytes:
    table_len = 4 + 12 * len(tags)
    offset = 128 + table_len
    entries, data = [], b""
    for sig, body in tags.items():
        body += bytes(-len(body) % 4)  # every tag starts on a 4-byte boundary
        entries.append(struct.pack(">4sII", sig, offset + len(data), len(body)))
        data += body
    size = 128 + table_len + len(data)
    header = (struct.pack(">I", size) + b"lcms" + struct.pack(">I", 0x02100000) + device_class + colour_space + pcs
              + struct.pack(">6H", 2026, 1, 1, 0, 0, 0) + b"acsp" + bytes(24) + struct.pack(">I", 0)
              + b"".join(_s15(v) for v in _D50) + b"test" + bytes(44))
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + b"".join(entries) + data


def grey_profile(gamma: float, name: str = "Test grey") -> bytes:
    """A grey display profile: luminance = value ** gamma."""
    curve = b"curv" + bytes(4) + struct.pack(">IH", 1, round(gamma * 256))
    return _profile(b"mntr", b"GRAY", b"XYZ ", {b"desc": _desc(name), b"wtpt": _xyz(_D50), b"kTRC": curve})


def cmyk_profile(corners: dict[tuple[int, int, int, int], tuple[float, float, float]], name: str = "Test CMYK") -> bytes:
    """A CMYK printer profile: ``corners`` maps each ink combination (c, m, y, k in {0, 1}) to its Lab colour;
    colours in between are interpolated. Corners not given print black."""
    identity = bytes(range(256))
    clut = b""
    for c in (0, 1):
        for m in (0, 1):
            for y in (0, 1):
                for k in (0, 1):
                    L, a, b = corners.get((c, m, y, k), (0.0, 0.0, 0.0))
                    clut += bytes((round(L * 255 / 100), round(a + 128), round(b + 128)))
    matrix = b"".join(_s15(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
    lut = b"mft1" + bytes(4) + bytes((4, 3, 2, 0)) + matrix + identity * 4 + clut + identity * 3
    return _profile(b"prtr", b"CMYK", b"Lab ", {b"desc": _desc(name), b"wtpt": _xyz(_D50), b"A2B0": lut})
