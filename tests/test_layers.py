"""Two layers in meshwarp: the sitter moves, the background behind stays still and is filled in."""
import cv2
import numpy as np
import pytest
from conftest import gallery_portrait

from talking_head.engines import DrivingFrame, create_engine, layers
from talking_head.segmentation import background_plate, person_mask
from talking_head.topology import get_layout


@pytest.fixture(autouse=True)
def fresh_layers(monkeypatch):
    """Each test makes its own layers (the engine remembers them per portrait and process)."""
    from collections import OrderedDict
    monkeypatch.setattr(layers, "_MEMO", OrderedDict())

SHIFT = 12.0  # px the head moves to the right


def _render_moved(portrait, **options):
    """(prepared, frame 1): the head and face moved SHIFT px to the right, expression unchanged."""
    img, face = portrait
    eng = create_engine("meshwarp", fill_mouth=False, **options)
    prepared = eng.prepare(img, face)
    moved = face.points + np.float32([SHIFT, 0, 0])
    frames = [DrivingFrame(0, None, face.points, face.points, np.float32([[1, 0, 0], [0, 1, 0]])),
              DrivingFrame(1, None, moved, moved, np.float32([[1, 0, SHIFT], [0, 1, 0]]))]
    return prepared, eng.render(prepared, frames)[1]


def test_person_mask_finds_the_sitter_and_not_the_landscape(portrait):
    img, face = portrait
    m = person_mask(img)
    assert m.shape == img.shape[:2] and m.dtype == np.float32
    cx, cy = face.points[list(get_layout(face.layout).oval), :2].mean(0).astype(int)
    assert m[cy, cx] > 0.9, "the face is not part of the sitter"
    h, w = m.shape
    assert m[: h // 8, : w // 6].mean() < 0.1 and m[: h // 8, -w // 6:].mean() < 0.1, "the sky counted as sitter"


def test_background_plate_continues_the_background_and_changes_nothing_else():
    h, w = 120, 160
    stripes = np.zeros((h, w, 3), np.uint8)
    stripes[:, (np.arange(w) // 4) % 2 == 0] = (200, 180, 40)
    stripes[:, (np.arange(w) // 4) % 2 == 1] = (30, 60, 160)
    img = stripes.copy()
    disc = np.zeros((h, w), np.float32)
    cv2.circle(disc, (80, 60), 30, 1.0, -1)
    img[disc > 0] = (250, 20, 20)
    plate = background_plate(img, disc > 0.5)
    hole = disc > 0.5
    assert np.array_equal(plate[~hole], img[~hole]), "pixels outside the region changed"
    assert not np.any(np.all(plate[hole] == (250, 20, 20), axis=-1)), "the sitter's colour is still there"
    # The band just inside the edge (what a moving head uncovers) carries the stripes' two colours.
    band = hole & ~cv2.erode(hole.astype(np.uint8), np.ones((11, 11), np.uint8)).astype(bool)
    colours = plate[band].astype(int)
    near = np.minimum(np.abs(colours - (200, 180, 40)).sum(1), np.abs(colours - (30, 60, 160)).sum(1))
    assert np.median(near) < 40
    assert colours.std(axis=0).mean() > 30, "the band is a flat smear, not the background's texture"


def test_the_plate_continues_a_smooth_background_without_seams():
    """What a head uncovers as it moves must not break into blocks: the Mona Lisa's landscape showed light
    blocks beside her temple, where plain mirroring switched from one stretch of the edge to the next."""
    h, w = 240, 320
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    # A background that changes smoothly in every direction, up to 2 levels from one pixel to the next.
    background = np.dstack([40 + 0.5 * xx + 0.3 * yy, 200 - 0.4 * xx + 20 * np.sin(yy / 15), 60 + 0.6 * yy])
    background = background.clip(0, 255).astype(np.uint8)
    sitter = np.zeros((h, w), np.uint8)
    cv2.ellipse(sitter, (160, 100), (50, 62), 0, 0, 360, 1, -1)      # head
    cv2.rectangle(sitter, (135, 150), (185, 190), 1, -1)            # neck
    cv2.ellipse(sitter, (160, 260), (130, 80), 0, 180, 360, 1, -1)  # shoulders, down to the frame's foot
    hole = sitter > 0
    img = background.copy()
    img[hole] = (250, 20, 20)
    plate = background_plate(img, hole).astype(np.float32)
    assert np.array_equal(plate[~hole], background[~hole])
    # Within 20 px of the outline (a fifth of the head's width: a long way for a head to travel), no step
    # between neighbouring pixels is more than twice the background's own largest step.
    band = hole & (cv2.distanceTransform(hole.astype(np.uint8), cv2.DIST_L2, 5) <= 20)
    own = _steps(background.astype(np.float32), np.ones((h, w), bool)).max()
    assert _steps(plate, band).max() <= 2 * own


def test_the_plate_keeps_the_backgrounds_texture_unbent_around_the_head():
    """The background a moving head uncovers must look like the rest of it: the Mona Lisa's sky showed
    arcs and the Pearl's backdrop a swirl where the fill bent the craquelure around her head (meshwarp
    v10). On an even, grainy background the filled band's grain must run as much across the outline as
    along it, and be as strong as the background's: not stretched into rays, smeared or repeated."""
    rng = np.random.default_rng(3)
    h, w = 400, 480
    grain = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 1.5)
    texture = np.clip(128 + 30 * grain / grain.std(), 0, 255).astype(np.uint8)
    sitter = np.zeros((h, w), np.uint8)
    cv2.ellipse(sitter, (240, 170), (80, 100), 0, 0, 360, 1, -1)    # head
    cv2.rectangle(sitter, (200, 250), (280, 320), 1, -1)            # neck
    cv2.ellipse(sitter, (240, 430), (200, 130), 0, 180, 360, 1, -1)  # shoulders
    hole = sitter > 0
    img = np.dstack([texture] * 3)
    img[hole] = (250, 20, 20)
    plate = background_plate(img, hole)[..., 1].astype(np.float32)
    depth = cv2.distanceTransform(hole.astype(np.uint8), cv2.DIST_L2, 5)
    ny, nx = np.gradient(cv2.GaussianBlur(depth, (0, 0), 2))  # across the outline
    norm = np.hypot(nx, ny) + 1e-6
    nx, ny = nx / norm, ny / norm
    gy, gx = np.gradient(plate)
    band = hole & (depth > 3) & (depth < 40)
    across = ((gx * nx + gy * ny) ** 2)[band].mean()
    along = ((gx * ny - gy * nx) ** 2)[band].mean()
    assert 0.8 < across / along < 1.25, f"the grain runs {across / along:.2f}x as much across the outline as along it"
    by, bx = np.gradient(texture.astype(np.float32))
    strength = (gx ** 2 + gy ** 2)[band].mean() / (bx ** 2 + by ** 2)[~hole].mean()
    assert 0.8 < strength < 1.25, f"the band's grain is {strength:.2f}x the background's"
    # Nor may the grain repeat at a fixed interval deeper in (the same tree tops in a row beside the Mona
    # Lisa): the background's own grain is unrelated to itself a few pixels on.
    deeper = hole & (depth > 3) & (depth < 80)
    worst = 0.0
    for lag in range(4, 70):
        for a, b, both in ((plate[:, :-lag], plate[:, lag:], deeper[:, :-lag] & deeper[:, lag:]),
                           (plate[:-lag], plate[lag:], deeper[:-lag] & deeper[lag:])):
            worst = max(worst, float(np.corrcoef(a[both], b[both])[0, 1]))
    assert worst < 0.35, f"the filled grain repeats itself (correlation {worst:.2f})"


def test_a_mark_beside_the_sitter_is_not_repeated_all_the_way_into_the_plate():
    """A dust speck or a tree top beside the sitter must not come back once a shift all the way in (the
    first shift-fill repeated the strip beside the region: five copies of a speck, a row of identical tree
    tops beside the Mona Lisa)."""
    rng = np.random.default_rng(1)
    img = np.clip(128 + rng.normal(0, 3, (600, 600, 3)), 0, 255).astype(np.uint8)
    cv2.circle(img, (280, 300), 4, (20, 20, 20), -1)  # 20 px left of the sitter
    hole = np.zeros((600, 600), bool)
    hole[:, 300:] = True
    img[hole] = (250, 20, 20)
    dark = (background_plate(img, hole)[..., 0] < 80) & hole
    copies = cv2.connectedComponents(dark.astype(np.uint8))[0] - 1
    assert 1 <= copies <= 2, f"the speck shows {copies} times in the plate"


def test_the_plate_of_a_wide_crop_with_the_sitter_at_one_side_has_no_black_holes():
    """The last resort of the plate's smooth colours (a pyramid halved until every pixel reaches some
    background) stopped at a one-pixel-high level on a wide crop and filled the far side with black."""
    img = np.full((500, 1000, 3), 150, np.uint8)
    hole = np.zeros((500, 1000), bool)
    hole[:, 500:] = True
    img[hole] = (250, 20, 20)
    plate = background_plate(img, hole)
    assert np.abs(plate.astype(int) - 150).max() <= 2


def test_the_plate_of_a_very_large_crop_is_made_small_and_enlarged(monkeypatch):
    """A portrait rendered for a large screen (`--max-side` up to 8192) must not take minutes and gigabytes
    for its plate: above 2048 px (segmentation._MAX_SIDE) the fill is made at that size and enlarged. The background
    outside the region stays the image's own pixels, and the fill continues it."""
    from talking_head import segmentation
    seen = []
    real = segmentation._shifted_detail
    monkeypatch.setattr(segmentation, "_shifted_detail", lambda detail, *a: seen.append(detail.shape) or real(detail, *a))
    h, w = 2600, 2200
    rng = np.random.default_rng(1)
    img = np.clip(rng.normal(0, 3, (h, w, 3)) + (120, 90, 60), 0, 255).astype(np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    hole = ((xx - w / 2) / (0.3 * w)) ** 2 + ((yy - h * 0.45) / (0.35 * h)) ** 2 < 1
    img[hole] = (240, 240, 240)
    plate = background_plate(img, hole)
    assert seen and max(max(shape[:2]) for shape in seen) <= 2048
    assert np.array_equal(plate[~hole], img[~hole])
    fill = plate[hole].astype(float)
    assert np.abs(fill.mean(axis=0) - (120, 90, 60)).max() < 1.5
    assert (plate[hole] <= img[~hole].max(axis=0)).all(), "the sitter's white leaked into the fill"
    assert fill.std(axis=0).max() > 1  # and some of the background's grain
    # Background only in a strip too thin to survive the shrinking (a one-pixel frame): filled at full size,
    # from it.
    img = np.full((60, 2100, 3), (120, 90, 60), np.uint8)
    frame = np.ones(img.shape[:2], bool)
    frame[:1], frame[-1:], frame[:, :1], frame[:, -1:] = False, False, False, False
    img[frame] = (240, 240, 240)
    assert np.abs(background_plate(img, frame)[frame].astype(int) - (120, 90, 60)).max() <= 1


def _steps(image, where):
    """The largest channel difference between neighbouring pixels, for every pair that lies in ``where``."""
    rows = np.abs(np.diff(image, axis=0)).max(-1)[where[1:] & where[:-1]]
    cols = np.abs(np.diff(image, axis=1)).max(-1)[where[:, 1:] & where[:, :-1]]
    return np.concatenate([rows, cols])


def test_the_head_moves_over_a_still_background(portrait):
    prepared, out = _render_moved(portrait)
    _, flat = _render_moved(portrait, layered=False)
    crop = prepared.crop.astype(int)
    # Background well away from the sitter (farther than the head moved): exactly the painting.
    sitter = np.round(person_mask(prepared.crop) * 255) > 0
    far = ~cv2.dilate(sitter.astype(np.uint8), np.ones((int(4 * SHIFT), int(4 * SHIFT)), np.uint8)).astype(bool)
    # ... but only where one layer would have moved it: next to the head, inside the anchor rings.
    dragged = np.abs(flat.astype(int) - crop).sum(-1) > 6
    region = far & dragged
    assert region.sum() > 500, "the one-layer warp moved no background here: the test sees nothing"
    assert np.array_equal(out[region], prepared.crop[region])
    # The face itself did move, by the same amount as with one layer.
    x0, y0 = prepared.crop_box[:2]
    _, face = portrait
    oval = face.points[list(get_layout(face.layout).oval), :2] - (x0 - SHIFT, y0)  # where the face went
    inner = np.zeros(out.shape[:2], np.uint8)
    cv2.fillPoly(inner, [(oval.mean(0) + 0.8 * (oval - oval.mean(0))).astype(np.int32)], 1)
    inner = inner > 0
    assert np.abs(out[inner].astype(int) - crop[inner]).mean() > 5
    assert np.abs(out[inner].astype(int) - flat[inner].astype(int)).max() <= 1


@pytest.mark.parametrize("pid", ["mona_lisa", "gogol", "lady_agnew", "girl_with_a_pearl_earring", "van_gogh_self_portrait"])
def test_a_still_frame_is_exactly_the_painting(pid):
    """Layers must not show until something moves: the soft rim of hair stays the painting's own."""
    img, face = gallery_portrait(pid, 800)
    still = DrivingFrame(0, None, face.points, face.points, np.float32([[1, 0, 0], [0, 1, 0]]))
    outs = []
    for layered in (True, False):
        eng = create_engine("meshwarp", fill_mouth=False, layered=layered)
        prepared = eng.prepare(img, face)
        assert (prepared.state.alpha is not None) == layered, "this portrait was expected to get two layers"
        outs.append(eng.render(prepared, [still])[0].astype(int))
    # Away from the crop's outermost pixels, where the remap table is half a pixel off (the paste-back
    # feathers them away), both are the painting itself.
    for out in outs:
        assert np.abs(out - prepared.crop)[2:-2, 2:-2].max() <= 1


def test_layers_are_made_once_per_portrait(portrait, monkeypatch):
    calls = []
    real = layers.person_mask
    monkeypatch.setattr(layers, "person_mask", lambda rgb: calls.append(1) or real(rgb))
    first, _ = _render_moved(portrait)
    second, _ = _render_moved(portrait)
    assert len(calls) == 1 and second.state.plate is first.state.plate
    assert not first.state.plate.flags.writeable


def test_without_a_segmenter_the_engine_warps_one_layer(portrait, monkeypatch):
    monkeypatch.setattr(layers, "person_mask", lambda rgb: None)
    prepared, out = _render_moved(portrait)
    assert prepared.state.alpha is None
    _, flat = _render_moved(portrait, layered=False)
    assert np.array_equal(out, flat)


def test_the_face_moves_even_where_the_mask_misses_it(portrait, monkeypatch):
    monkeypatch.setattr(layers, "person_mask", lambda rgb: np.zeros(rgb.shape[:2], np.float32))
    prepared, out = _render_moved(portrait)
    _, flat = _render_moved(portrait, layered=False)
    x0, y0 = prepared.crop_box[:2]
    _, face = portrait
    oval = face.points[list(get_layout(face.layout).oval), :2] - (x0 - SHIFT, y0)  # where the face went
    inner = np.zeros(out.shape[:2], np.uint8)
    cv2.fillPoly(inner, [(oval.mean(0) + 0.9 * (oval - oval.mean(0))).astype(np.int32)], 1)
    assert np.abs(out[inner > 0].astype(int) - flat[inner > 0].astype(int)).max() <= 1


def test_the_segmenter_can_be_started_ahead_of_the_first_visitor():
    from talking_head import segmentation
    t = segmentation.warm_up()
    t.join(timeout=60)
    assert not t.is_alive() and segmentation._segmenter is not None


def test_the_layers_are_kept_in_the_cache_for_the_next_process(tmp_path, monkeypatch):
    """A kiosk or a teacher's CLI starts a new process per render: it must neither start the segmenter
    nor make the background plate again for a portrait it has seen, and the picture must not change
    because the layers were stored."""
    from collections import OrderedDict

    from talking_head.cache import DiskCache
    from talking_head.pipeline import AnimateSettings, animate
    calls, plates = [], []
    real, real_plate = layers.person_mask, layers.background_plate
    monkeypatch.setattr(layers, "person_mask", lambda rgb: calls.append(1) or real(rgb))
    monkeypatch.setattr(layers, "background_plate", lambda img, region: plates.append(1) or real_plate(img, region))
    cache = DiskCache(tmp_path)
    renders = []
    for _ in range(2):
        monkeypatch.setattr(layers, "_MEMO", OrderedDict())  # as in a new process
        crops = []
        animate("gallery:mona_lisa", "gallery:smile_eyes", None, cache=cache, settings=AnimateSettings(max_side=640),
                on_frame=lambda i, f, c, crops=crops: crops.append(c.copy()) if i % 10 == 0 else None)
        renders.append(crops)
    assert len(calls) == 1, "the segmenter ran again although its mask was stored"
    assert len(plates) == 1, "the background plate was made again although the layers were stored"
    assert list(tmp_path.glob("source/*.bin"))
    assert all(np.array_equal(a, b) for a, b in zip(*renders)) and len(renders[0]) == len(renders[1]) > 3


class _MemoryStore(dict):
    """An engine's source store (engines.base.SourceStore) in memory: its entries can be damaged by hand."""
    get = dict.get

    def put(self, key, data):
        self[key] = data


def test_a_damaged_stored_mask_is_computed_again(monkeypatch):
    crop = np.zeros((40, 30, 3), np.uint8)
    monkeypatch.setattr(layers, "person_mask", lambda rgb: np.full(rgb.shape[:2], 0.5, np.float32))
    store = _MemoryStore()
    first = layers._stored_person_mask(crop, "a-crop", store)
    (key,) = store
    store[key] = b"not zlib"
    again = layers._stored_person_mask(crop, "a-crop", store)
    assert np.array_equal(first, again) and first.dtype == np.uint8 and first[0, 0] == 128
    assert store[key] != b"not zlib"


def test_damaged_or_mismatched_stored_layers_are_made_again(monkeypatch):
    """Stored layers that are not a PNG, or a PNG of another crop's size, are never used: the layers are
    made again, the same as before, and stored over them."""
    rng = np.random.default_rng(3)
    crop = rng.integers(0, 256, (120, 100, 3), np.uint8)
    oval = np.float32([[30, 30], [70, 30], [70, 80], [30, 80]])
    person = np.zeros((120, 100), np.uint8)
    person[20:100, 25:75] = 255
    monkeypatch.setattr(layers, "person_mask", lambda rgb: person.astype(np.float32) / 255)
    store = _MemoryStore()
    sitter, plate = layers.sitter_and_plate(crop, oval, store)
    (name,) = [k for k in store if k.startswith("layers-")]
    for bad in (b"not a png", cv2.imencode(".png", np.zeros((60, 50, 4), np.uint8))[1].tobytes()):
        store[name] = bad
        layers._MEMO.clear()  # as in a new process
        again_sitter, again_plate = layers.sitter_and_plate(crop, oval, store)
        assert np.array_equal(again_sitter, sitter) and np.array_equal(again_plate, plate)
        assert store[name] != bad
    layers._MEMO.clear()
    monkeypatch.setattr(layers, "background_plate", lambda *a: pytest.fail("the stored layers were not used"))
    stored_sitter, stored_plate = layers.sitter_and_plate(crop, oval, store)
    assert np.array_equal(stored_sitter, sitter) and np.array_equal(stored_plate, plate)


def test_layers_stored_by_other_code_are_made_again(tmp_path, monkeypatch):
    """The plate is still being tuned: after an update that does not bump the engine's settings key, the
    layers the code before it stored must not be served (they are keyed by the code's digest)."""
    crop = np.random.default_rng(5).integers(0, 256, (80, 60, 3), np.uint8)
    oval = np.float32([[20, 20], [40, 20], [40, 50], [20, 50]])
    person = np.zeros((80, 60), np.float32)
    person[10:70, 15:45] = 1
    monkeypatch.setattr(layers, "person_mask", lambda rgb: person)
    store = _MemoryStore()
    layers.sitter_and_plate(crop, oval, store)
    made = []
    real_plate = layers.background_plate
    monkeypatch.setattr(layers, "background_plate", lambda img, region: made.append(1) or real_plate(img, region))
    layers._MEMO.clear()
    layers.sitter_and_plate(crop, oval, store)
    assert not made, "the same code made its stored layers again"
    monkeypatch.setattr(layers, "source_digest", lambda: "the code after an update")
    layers._MEMO.clear()
    layers.sitter_and_plate(crop, oval, store)
    assert made == [1], "layers the code before an update stored were served"
