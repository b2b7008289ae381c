"""The benchmark's per-portrait speed table reports what was rendered."""
from talking_head.bench import gallery_speed
from talking_head.gallery import Gallery
from talking_head.images import load_image


def test_gallery_speed_reports_each_portraits_canvas_and_crop():
    g = Gallery.default()
    (row,) = gallery_speed(1, clip_id="smile_eyes", portraits=["lady_agnew"])
    h, w = load_image(g.portrait_path("lady_agnew"), max_side=1280).shape[:2]
    assert row["portrait"] == "lady_agnew" and row["clip"] == "smile_eyes"
    assert row["canvas"] == (w, h)
    cw, ch = row["crop"]
    assert 0 < cw <= w and 0 < ch <= h
    assert row["duration"] == g.clip("smile_eyes")["duration"]
    assert row["cached_s"] > 0
