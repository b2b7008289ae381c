"""A corpus of bad (and awkward but legitimate) portraits and driving clips, generated at test time.

Nothing here is committed as data: every file is derived in a few seconds from the gallery's own
portraits and clips, from Pillow, or from ffmpeg's lavfi sources, using the ffmpeg binary that
ships with imageio-ffmpeg. ``build_corpus(dest)`` writes everything and returns ``{name: path}``;
each ``make_*`` function can also be called on its own.

The expected outcome of each case is decided in ``tests/test_bad_input.py``, not here.
"""
from __future__ import annotations

import io
import os
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
PORTRAITS = REPO / "gallery" / "portraits"
CLIPS = REPO / "gallery" / "clips"

# A frontal, clearly visible face that mediapipe finds at small sizes.
BASE_PORTRAIT = PORTRAITS / "gogol.jpg"
# 3.12 s, 78 frames at 25 fps, 512x512, no audio, moov atom at the end of the file.
BASE_CLIP = CLIPS / "smile_eyes.mp4"
# 7.32 s, 183 frames at 25 fps, 512x512, with audio.
AUDIO_CLIP = CLIPS / "talking_02.mp4"

# Frame counts of the clips we cut ourselves (independent of the code under test).
SHORT_FRAMES = 25          # the 1 s cuts at 25 fps
VFR_FRAMES = 30


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def ff(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-y", *args],
                   capture_output=True, check=True, timeout=120)


def _base_image(max_side: int = 640) -> Image.Image:
    """The base portrait, upright RGB, scaled down so that every derived file stays small."""
    img = Image.open(BASE_PORTRAIT).convert("RGB")
    img.thumbnail((max_side, max_side), Image.LANCZOS)
    return img


# ---------------------------------------------------------------------------------------------
# images
# ---------------------------------------------------------------------------------------------

def make_empty(dest: Path) -> Path:
    p = dest / "empty.jpg"
    p.write_bytes(b"")
    return p


def make_text_as_jpg(dest: Path) -> Path:
    p = dest / "notes.jpg"
    p.write_text("Dear museum, here is my portrait! (this is a text file renamed to .jpg)\n" * 20)
    return p


def make_truncated_jpeg(dest: Path) -> Path:
    data = BASE_PORTRAIT.read_bytes()
    p = dest / "truncated.jpg"
    p.write_bytes(data[: len(data) // 2])
    return p


def make_truncated_png(dest: Path) -> Path:
    buf = io.BytesIO()
    _base_image().save(buf, "PNG")
    data = buf.getvalue()
    p = dest / "truncated.png"
    p.write_bytes(data[: len(data) // 2])
    return p


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def make_bomb_header(dest: Path, side: int = 30000, name: str = "bomb_header.png") -> Path:
    """A tiny PNG whose IHDR claims side x side RGB pixels but whose data is almost nothing."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (1 + 3 * 64))  # not even one full row
    p = dest / name
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat)
                  + _png_chunk(b"IEND", b""))
    return p


def make_bomb_1bit(dest: Path, side: int = 20000) -> Path:
    """A complete, valid 1-bit all-black PNG of side x side (400 megapixels) in a few tens of KB."""
    row = b"\x00" + b"\x00" * ((side + 7) // 8)  # filter byte + packed bits
    comp = zlib.compressobj(9)
    chunks = []
    block = row * 500
    for _ in range(side // 500):
        chunks.append(comp.compress(block))
    chunks.append(comp.compress(row * (side % 500)))
    chunks.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    p = dest / "bomb_1bit.png"
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", b"".join(chunks))
                  + _png_chunk(b"IEND", b""))
    return p


def make_bomb_64mp(dest: Path) -> Path:
    """A header-only PNG of 8000x8000 (64 megapixels): over the app's limit, under Pillow's hard one."""
    return make_bomb_header(dest, side=8000, name="bomb_64mp.png")


def make_huge_file(dest: Path, size: int = 51 * 1024 * 1024) -> Path:
    """A JPEG padded (sparsely: no disk is used) to more than 50 MB."""
    p = dest / "huge.jpg"
    p.write_bytes(BASE_PORTRAIT.read_bytes())
    with open(p, "r+b") as f:
        f.truncate(size)
    return p


def make_one_pixel(dest: Path) -> Path:
    p = dest / "one_pixel.png"
    Image.new("RGB", (1, 1), (120, 90, 60)).save(p)
    return p


def make_cmyk_jpeg(dest: Path) -> Path:
    p = dest / "cmyk.jpg"
    img = _base_image().convert("CMYK")
    img.save(p, "JPEG", quality=90)
    assert Image.open(p).mode == "CMYK"
    return p


def make_gray16_png(dest: Path) -> Path:
    p = dest / "gray16.png"
    g = np.asarray(_base_image().convert("L"), dtype=np.uint16) * 257
    Image.fromarray(g).save(p)  # uint16 -> mode I;16, stored as a 16-bit grayscale PNG
    with Image.open(p) as chk:
        assert chk.mode.startswith("I"), chk.mode
    return p


def make_float_tiff(dest: Path) -> Path:
    """A 32-bit floating-point greyscale TIFF scaled 0..1, as scientific and HDR tools write them."""
    p = dest / "float.tif"
    g = np.asarray(_base_image().convert("L"), dtype=np.float32) / 255.0
    Image.fromarray(g).save(p)  # float32 -> mode F
    with Image.open(p) as chk:
        assert chk.mode == "F", chk.mode
    return p


def make_palette_png(dest: Path) -> Path:
    p = dest / "palette.png"
    _base_image().convert("P", palette=Image.ADAPTIVE, colors=128).save(p)
    assert Image.open(p).mode == "P"
    return p


def make_rgba_png(dest: Path) -> Path:
    """Transparent margins (an oval cut-out), the face opaque."""
    img = _base_image()
    w, h = img.size
    yy, xx = np.mgrid[0:h, 0:w]
    inside = ((xx - w / 2) / (0.48 * w)) ** 2 + ((yy - h / 2) / (0.49 * h)) ** 2 <= 1.0
    alpha = np.where(inside, 255, 0).astype(np.uint8)
    rgba = img.convert("RGBA")
    rgba.putalpha(Image.fromarray(alpha))
    p = dest / "rgba.png"
    rgba.save(p)
    assert Image.open(p).mode == "RGBA"
    return p


def make_gray_jpeg(dest: Path) -> Path:
    p = dest / "gray.jpg"
    _base_image().convert("L").save(p, "JPEG", quality=90)
    assert Image.open(p).mode == "L"
    return p


def make_animated_gif(dest: Path) -> Path:
    """Three frames: the portrait, a darker copy and a mirrored copy."""
    img = _base_image(480)
    frames = [img, img.point(lambda v: v * 6 // 10), img.transpose(Image.FLIP_LEFT_RIGHT)]
    p = dest / "animated.gif"
    frames[0].save(p, save_all=True, append_images=frames[1:], duration=200, loop=0)
    assert Image.open(p).n_frames == 3
    return p


def make_exif_rotated(dest: Path) -> Path:
    """The portrait stored lying on its side (landscape pixels) with EXIF Orientation=6.

    Orientation 6 means "rotate 90 degrees clockwise to display", so a viewer that honours EXIF
    shows the upright (taller than wide) portrait; one that ignores it shows the face sideways.
    """
    upright = _base_image()
    stored = upright.transpose(Image.ROTATE_90)  # 90 degrees counter-clockwise
    exif = Image.Exif()
    exif[0x0112] = 6
    p = dest / "exif_rotated.jpg"
    stored.save(p, "JPEG", quality=92, exif=exif.tobytes())
    with Image.open(p) as chk:
        assert chk.size == (upright.height, upright.width)
        assert chk.getexif().get(0x0112) == 6
    return p


def make_webp(dest: Path) -> Path:
    p = dest / "portrait.webp"
    _base_image().save(p, "WEBP", quality=90)
    return p


def make_tiff(dest: Path) -> Path:
    p = dest / "portrait.tif"
    _base_image().save(p, "TIFF", compression="tiff_deflate")
    return p


def upright_size() -> tuple[int, int]:
    """(width, height) of the upright portrait behind the derived images."""
    return _base_image().size


def make_no_face(dest: Path) -> Path:
    """A landscape: sky gradient, a green field and some noise. No face anywhere."""
    rng = np.random.default_rng(7)
    h, w = 480, 640
    img = np.zeros((h, w, 3), np.float32)
    t = np.linspace(0, 1, h // 2)[:, None]
    img[: h // 2] = (np.array([90, 140, 220]) * (1 - t) + np.array([200, 220, 240]) * t)[:, None, :]
    img[h // 2:] = np.array([60, 120, 50])
    img += rng.normal(0, 12, img.shape)
    p = dest / "landscape.png"
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(p)
    return p


def make_tiny_face(dest: Path) -> Path:
    """A 1200x900 wall of canvas with the portrait hung small: its face is about 25 pixels tall."""
    small = Image.open(BASE_PORTRAIT).convert("RGB")
    small.thumbnail((90, 90), Image.LANCZOS)  # the 968x1115 portrait's face is ~370 px of 1115
    canvas = Image.new("RGB", (1200, 900), (190, 180, 160))
    canvas.paste(small, (560, 400))
    p = dest / "tiny_face.jpg"
    canvas.save(p, "JPEG", quality=92)
    return p


# Six sitters in two rows of three; the top-left one is drawn largest (the default face), and
# faces are counted from the left by the centre of their box.
SIX_MEMBERS = (("gogol.jpg", 360), ("voltaire.jpg", 300), ("rousseau.jpg", 300),
               ("van_gogh_self_portrait.jpg", 300), ("walt_whitman.jpg", 260), ("diderot.jpg", 260))


def _tiles(members) -> list[Image.Image]:
    """Gallery portraits scaled to the given heights."""
    tiles = []
    for name, height in members:
        im = Image.open(PORTRAITS / name).convert("RGB")
        tiles.append(im.resize((round(im.width * height / im.height), height), Image.LANCZOS))
    return tiles


def make_six_faces(dest: Path) -> Path:
    tiles = _tiles(SIX_MEMBERS)
    gap = 16
    rows = [tiles[:3], tiles[3:]]
    W = max(sum(t.width for t in r) + gap * 4 for r in rows)
    H = sum(max(t.height for t in r) for r in rows) + gap * 3
    canvas = Image.new("RGB", (W, H), (200, 200, 196))
    y = gap
    for r in rows:
        x = gap
        for t in r:
            canvas.paste(t, (x, y))
            x += t.width + gap
        y += max(t.height for t in r) + gap
    p = dest / "six_faces.jpg"
    canvas.save(p, "JPEG", quality=90)
    return p


def make_profile_silhouette(dest: Path) -> Path:
    """A face in profile, as the cut-paper silhouette portraits of the 18th century paint it.

    (No public-domain profile painting ships with the repository and tests must not download one,
    so the profile is drawn: forehead, nose, lips and chin facing left, in black on cream.)
    """
    from PIL import ImageDraw

    img = Image.new("RGB", (600, 760), (236, 226, 200))
    d = ImageDraw.Draw(img)
    outline = [(330, 90), (250, 110), (205, 170), (195, 250), (180, 300), (140, 360), (175, 375), (185, 400),
               (170, 420), (190, 440), (180, 465), (205, 500), (260, 520), (300, 560), (300, 640), (250, 700),
               (520, 700), (470, 600), (470, 520), (500, 420), (500, 250), (450, 140)]
    d.polygon(outline, fill=(20, 18, 16))
    p = dest / "profile_silhouette.png"
    img.save(p)
    return p


# Left to right; the leftmost is drawn largest so the default ("largest face") is face 0 and
# face_index=1 must select a different one.
GROUP_MEMBERS = (("gogol.jpg", 620), ("voltaire.jpg", 440), ("rousseau.jpg", 440))


def make_group(dest: Path) -> Path:
    tiles = _tiles(GROUP_MEMBERS)
    gap = 20
    W = sum(t.width for t in tiles) + gap * (len(tiles) + 1)
    H = max(t.height for t in tiles) + 2 * gap
    canvas = Image.new("RGB", (W, H), (200, 200, 196))
    x = gap
    for t in tiles:
        canvas.paste(t, (x, H - gap - t.height))
        x += t.width + gap
    p = dest / "group.jpg"
    canvas.save(p, "JPEG", quality=90)
    return p


def group_tile_spans() -> list[tuple[int, int]]:
    """(x0, x1) of each member's tile in make_group's canvas, in canvas pixels."""
    spans, x, gap = [], 20, 20
    for name, height in GROUP_MEMBERS:
        with Image.open(PORTRAITS / name) as im:
            w = round(im.width * height / im.height)
        spans.append((x, x + w))
        x += w + gap
    return spans


def group_canvas_width() -> int:
    return group_tile_spans()[-1][1] + 20


# ---------------------------------------------------------------------------------------------
# clips
# ---------------------------------------------------------------------------------------------

def make_audio_only(dest: Path) -> Path:
    p = dest / "voice.m4a"
    ff("-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac", str(p))
    return p


def make_zero_frames(dest: Path) -> Path:
    """An mp4 written from zero frames: ffmpeg leaves a valid container with no track at all."""
    p = dest / "zero_frames.mp4"
    ff("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=1", "-frames:v", "0",
       "-c:v", "libx264", "-pix_fmt", "yuv420p", str(p))
    return p


def make_garbled_clip(dest: Path) -> Path:
    """A well-formed mp4 whose video stream is intact in the index but every frame's bytes are noise.

    The container opens and states a 512x512 h264 stream, yet not one frame decodes.
    """
    src = dest / "_garble_src.mp4"
    ff("-i", str(BASE_CLIP), "-frames:v", str(SHORT_FRAMES), "-an", "-c:v", "libx264", "-preset", "ultrafast",
       "-pix_fmt", "yuv420p", str(src))
    data = bytearray(src.read_bytes())
    src.unlink()
    rng = np.random.default_rng(11)
    i = 0
    while i + 8 <= len(data):
        size, kind = struct.unpack(">I4s", bytes(data[i:i + 8]))
        if kind == b"mdat":
            data[i + 8:i + size] = rng.integers(0, 256, size - 8, dtype=np.uint8).tobytes()
            break
        if size < 8:
            raise AssertionError("unexpected mp4 box layout")
        i += size
    else:
        raise AssertionError("no mdat box")
    p = dest / "garbled.mp4"
    p.write_bytes(bytes(data))
    return p


def make_random_bytes(dest: Path) -> Path:
    p = dest / "corrupt.mp4"
    p.write_bytes(np.random.default_rng(3).integers(0, 256, 200_000, dtype=np.uint8).tobytes())
    return p


def make_truncated_clip(dest: Path) -> Path:
    """The first 60% of a gallery clip as it is (its index is at the end, so it cannot be opened)."""
    data = BASE_CLIP.read_bytes()
    p = dest / "truncated_moov_end.mp4"
    p.write_bytes(data[: int(len(data) * 0.6)])
    return p


def make_truncated_faststart_clip(dest: Path) -> Path:
    """The first 60% of a faststart (index-first) copy of a gallery clip: opens, but its tail is gone."""
    full = dest / "_faststart_full.mp4"
    ff("-i", str(BASE_CLIP), "-c", "copy", "-movflags", "+faststart", str(full))
    data = full.read_bytes()
    full.unlink()
    p = dest / "truncated_faststart.mp4"
    p.write_bytes(data[: int(len(data) * 0.6)])
    return p


def make_no_face_clip(dest: Path) -> Path:
    p = dest / "testsrc.mp4"
    ff("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-frames:v", str(SHORT_FRAMES),
       "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(p))
    return p


def make_short_no_audio(dest: Path) -> Path:
    """One second (25 frames) of a talking gallery clip with its audio removed."""
    p = dest / "short_no_audio.mp4"
    ff("-i", str(AUDIO_CLIP), "-frames:v", str(SHORT_FRAMES), "-an",
       "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(p))
    return p


def make_short_with_audio(dest: Path) -> Path:
    """One second (25 frames) of a talking gallery clip, audio kept."""
    p = dest / "short_with_audio.mp4"
    ff("-i", str(AUDIO_CLIP), "-t", "1", "-frames:v", str(SHORT_FRAMES),
       "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", str(p))
    return p


def make_hevc_clip(dest: Path) -> Path:
    """One second of a talking gallery clip as a phone records it: HEVC (tagged hvc1, as iPhones write it)
    with AAC audio, which Chromium does not play without a hardware decoder."""
    p = dest / "phone_hevc.mp4"
    ff("-i", str(AUDIO_CLIP), "-t", "1", "-frames:v", str(SHORT_FRAMES), "-c:v", "libx265", "-preset",
       "ultrafast", "-x265-params", "log-level=error", "-tag:v", "hvc1", "-pix_fmt", "yuv420p", "-c:a", "aac",
       str(p))
    return p


def make_camera_avi(dest: Path) -> Path:
    """One second of a talking gallery clip as an older camera records it: MPEG-4 Part 2 video in an AVI,
    which no current browser plays, with MP3 audio."""
    p = dest / "camera.avi"
    ff("-i", str(AUDIO_CLIP), "-t", "1", "-frames:v", str(SHORT_FRAMES), "-c:v", "mpeg4", "-q:v", "4",
       "-c:a", "libmp3lame", str(p))
    return p


def make_vfr_clip(dest: Path) -> Path:
    """30 frames of a real clip: the first 15 at 25 fps, then 12.5 fps, then a stutter of 50 fps."""
    p = dest / "vfr.mp4"
    expr = "if(lt(N,15),N*0.04,if(lt(N,22),0.6+(N-15)*0.08,1.16+(N-22)*0.02))/TB"
    ff("-i", str(BASE_CLIP), "-vf", f"setpts='{expr}'", "-frames:v", str(VFR_FRAMES),
       "-fps_mode", "passthrough", "-video_track_timescale", "1000",
       "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(p))
    return p


def make_rotated_phone_clip(dest: Path) -> tuple[Path, Path]:
    """A portrait-shaped (384x512) upright clip and its phone-style copy.

    The copy stores the pixels turned 90 degrees counter-clockwise (512x384, landscape) and
    carries a display-matrix rotation of -90 (i.e. rotate 90 degrees clockwise to display),
    written by stream copy just as a phone's recorder would: upright use requires honouring it.
    Returns (upright, rotated).
    """
    upright = dest / "phone_upright.mp4"
    ff("-i", str(BASE_CLIP), "-vf", "crop=384:512:64:0", "-frames:v", str(SHORT_FRAMES),
       "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(upright))
    sideways = dest / "_phone_sideways.mp4"
    ff("-i", str(upright), "-vf", "transpose=cclock", "-c:v", "libx264", "-preset", "ultrafast",
       "-pix_fmt", "yuv420p", str(sideways))
    rotated = dest / "phone_rotated.mp4"
    ff("-display_rotation", "-90", "-i", str(sideways), "-c", "copy", str(rotated))
    sideways.unlink()
    return upright, rotated


def make_face_partly_visible_clip(dest: Path) -> Path:
    """25 frames: 8 of a face, then 17 of a test pattern (the face is visible in under half)."""
    p = dest / "face_then_pattern.mp4"
    ff("-i", str(BASE_CLIP), "-f", "lavfi", "-i", "testsrc2=size=512x512:rate=25",
       "-filter_complex", "[0:v]trim=end_frame=8,setpts=PTS-STARTPTS,format=yuv420p[a];"
       "[1:v]trim=end_frame=17,setpts=PTS-STARTPTS,format=yuv420p[b];[a][b]concat=n=2:v=1[v]",
       "-map", "[v]", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(p))
    return p


def make_gif_clip(dest: Path) -> Path:
    """An animated GIF as the driving clip (25 frames, 256x256)."""
    p = dest / "driving.gif"
    ff("-i", str(BASE_CLIP), "-frames:v", str(SHORT_FRAMES), "-vf", "scale=256:256", str(p))
    return p


def make_odd_name_clip(dest: Path) -> Path:
    """A good clip whose name looks like an ffmpeg protocol and an option: 'clip:1 #-x.mp4'."""
    p = dest / "-clip:1 #x.mp4"
    ff("-i", str(BASE_CLIP), "-frames:v", str(SHORT_FRAMES), "-c:v", "libx264", "-preset", "ultrafast",
       "-pix_fmt", "yuv420p", "file:" + str(p))
    return p


def make_one_frame_clip(dest: Path) -> Path:
    p = dest / "one_frame.mp4"
    ff("-i", str(BASE_CLIP), "-frames:v", "1", "-c:v", "libx264", "-preset", "ultrafast",
       "-pix_fmt", "yuv420p", str(p))
    return p


def make_no_video_stream(dest: Path) -> Path:
    """An mp4 that holds only a subtitle track: a valid container without any video."""
    srt = dest / "_subs.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:01,000\nHello from the museum.\n", encoding="utf-8")
    p = dest / "subtitles_only.mp4"
    ff("-i", str(srt), "-c:s", "mov_text", str(p))
    srt.unlink()
    return p


def make_corrupt_header(dest: Path) -> Path:
    """A real faststart mp4 whose index (moov, at the front) is overwritten with noise; the frames are intact."""
    full = dest / "_corrupt_header_src.mp4"
    ff("-i", str(BASE_CLIP), "-frames:v", str(SHORT_FRAMES), "-c:v", "libx264", "-preset", "ultrafast",
       "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(full))
    data = bytearray(full.read_bytes())
    full.unlink()
    size, kind = struct.unpack(">I4s", bytes(data[:8]))
    assert kind == b"ftyp"
    moov_size, moov = struct.unpack(">I4s", bytes(data[size:size + 8]))
    assert moov == b"moov", moov
    start = size + 8  # keep ftyp and the moov box header, garble its whole body
    data[start:size + moov_size] = np.random.default_rng(5).integers(0, 256, moov_size - 8, dtype=np.uint8).tobytes()
    p = dest / "corrupt_header.mp4"
    p.write_bytes(bytes(data))
    return p


HIGH_FPS_FRAMES = 48


def make_240fps_clip(dest: Path) -> Path:
    """48 frames of a real clip stamped at 240 fps (0.2 s), as a phone's slow-motion mode records."""
    p = dest / "fps240.mp4"
    ff("-i", str(BASE_CLIP), "-frames:v", str(HIGH_FPS_FRAMES), "-vf", "setpts=N/240/TB", "-r", "240",
       "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(p))
    return p


UHD_FRAMES = 12


def make_4k_clip(dest: Path) -> Path:
    """12 frames of 3840x2160 (the face scaled up to fill the height, pillar-boxed)."""
    p = dest / "uhd_4k.mp4"
    ff("-i", str(BASE_CLIP), "-frames:v", str(UHD_FRAMES), "-vf", "scale=2160:2160,pad=3840:2160:840:0",
       "-c:v", "libx264", "-preset", "ultrafast", "-crf", "32", "-pix_fmt", "yuv420p", str(p))
    return p


LONG_CLIP_S = 31


def make_too_long_clip(dest: Path) -> Path:
    """31 s (longer than the 30 s limit of the app and the CLI), small and cheap to decode."""
    p = dest / "too_long.mp4"
    ff("-f", "lavfi", "-i", f"testsrc2=size=128x128:rate=10:duration={LONG_CLIP_S}",
       "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(p))
    return p


def make_face_leaves_halfway(dest: Path) -> Path:
    """25 frames: the camera pans away from the face, which is fully in view for the first 12 frames,
    leaves the frame over frames 12-15 and is gone for the last 9."""
    p = dest / "face_leaves.mp4"
    ff("-i", str(BASE_CLIP), "-frames:v", str(SHORT_FRAMES),
       "-vf", "pad=1024:512:0:0:color=0x405060,crop=512:512:'min(512,max(0,(n-12)*128))':0",
       "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(p))
    return p


# ---------------------------------------------------------------------------------------------

def build_corpus(dest: str | os.PathLike) -> dict[str, Path]:
    """Write every case into ``dest`` (created if needed); returns {case name: path}."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    c: dict[str, Path] = {}
    for name, fn in (
        ("empty", make_empty), ("text_as_jpg", make_text_as_jpg),
        ("truncated_jpeg", make_truncated_jpeg), ("truncated_png", make_truncated_png),
        ("bomb_header", make_bomb_header), ("bomb_1bit", make_bomb_1bit), ("bomb_64mp", make_bomb_64mp),
        ("huge_file", make_huge_file), ("one_pixel", make_one_pixel), ("webp", make_webp), ("tiff", make_tiff),
        ("cmyk_jpeg", make_cmyk_jpeg), ("gray16_png", make_gray16_png), ("float_tiff", make_float_tiff), ("palette_png", make_palette_png),
        ("rgba_png", make_rgba_png), ("gray_jpeg", make_gray_jpeg), ("animated_gif", make_animated_gif),
        ("exif_rotated", make_exif_rotated), ("no_face", make_no_face), ("group", make_group),
        ("audio_only", make_audio_only), ("zero_frames", make_zero_frames),
        ("garbled_clip", make_garbled_clip), ("random_bytes", make_random_bytes),
        ("truncated_clip", make_truncated_clip), ("truncated_faststart", make_truncated_faststart_clip),
        ("no_face_clip", make_no_face_clip), ("short_no_audio", make_short_no_audio),
        ("short_with_audio", make_short_with_audio), ("vfr_clip", make_vfr_clip),
        ("one_frame_clip", make_one_frame_clip), ("face_partly_visible", make_face_partly_visible_clip),
        ("gif_clip", make_gif_clip), ("odd_name_clip", make_odd_name_clip),
        ("tiny_face", make_tiny_face), ("six_faces", make_six_faces), ("profile", make_profile_silhouette),
        ("no_video_stream", make_no_video_stream), ("corrupt_header", make_corrupt_header),
        ("fps240", make_240fps_clip), ("uhd_4k", make_4k_clip), ("too_long", make_too_long_clip),
        ("face_leaves_halfway", make_face_leaves_halfway),
    ):
        c[name] = fn(dest)
    c["phone_upright"], c["phone_rotated"] = make_rotated_phone_clip(dest)
    return c


if __name__ == "__main__":  # python tests/badinput.py DEST: write the corpus to look at it
    import sys

    for k, v in build_corpus(sys.argv[1] if len(sys.argv) > 1 else "badinput_corpus").items():
        print(f"{k:22s} {v.stat().st_size:>9d}  {v}")


def two_people_frames() -> tuple[np.ndarray, np.ndarray, int]:
    """A frame of two people side by side (two gallery drivers: the larger on the left), the same frame with the
    left one hidden (a hand, a cut), and the x where the right one's half starts."""
    from talking_head import video

    def first_frame(clip: Path) -> np.ndarray:
        return next(video.read_frames(clip, video.probe(clip), max_side=720))

    left, right = first_frame(CLIPS / "subtle_smile.mp4"), first_frame(BASE_CLIP)
    h = left.shape[0]
    size = (round(right.shape[1] * 0.6 * h / right.shape[0]), round(0.6 * h))
    right = np.asarray(Image.fromarray(right).resize(size, Image.LANCZOS))
    right = np.pad(right, ((0, h - right.shape[0]), (0, 0), (0, 0)), constant_values=40)
    both = np.ascontiguousarray(np.concatenate([left, right], axis=1))
    hidden = both.copy()
    hidden[:, : left.shape[1]] = 30
    return both, hidden, left.shape[1]


def make_two_people_clip(dest: Path) -> Path:
    """Six frames (25 fps) of ``two_people_frames``' two people, no sound."""
    still, p = dest / "two_people.png", dest / "two_people.mp4"
    Image.fromarray(two_people_frames()[0]).save(still)
    ff("-loop", "1", "-i", str(still), "-frames:v", "6", "-r", "25", "-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2",
       "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(p))
    return p



def close_pair_frame() -> tuple[np.ndarray, int]:
    """Two visitors cheek to cheek: ``two_people_frames``' right-hand face cut out and set just beside the larger
    left-hand one, inside the square a tracker follows that face in; and the x where the left one's frame ends."""
    from talking_head.faces import get_backend

    both, _, split = two_people_frames()
    left, right = both[:, :split], both[:, split:]
    x0, y0, x1, y1 = (int(v) for v in get_backend("mediapipe").detect(right)[0].box)
    m = int(0.3 * (x1 - x0))
    face = right[max(y0 - m, 0):y1 + m, max(x0 - m, 0):x1 + m]
    frame = np.concatenate([left, np.full((left.shape[0], 300, 3), 128, np.uint8)], axis=1)
    at = split - 80  # (its margin over the left frame's edge, its face beside the left face)
    frame[150:150 + face.shape[0], at:at + face.shape[1]] = face[: frame.shape[0] - 150]
    return np.ascontiguousarray(frame), split
