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


def test_upload_checks_time_each_file_as_an_upload():
    from talking_head.bench import upload_checks
    rows = upload_checks(1, portraits=("gogol",), clips=("smile_eyes",))
    assert [(r["kind"], r["id"]) for r in rows] == [("portrait", "gogol"), ("clip", "smile_eyes")]
    assert rows[1]["size"].startswith("512x512, 3.1 s") and all(r["s"] > 0 for r in rows)


def test_end_to_end_times_cached_uploaded_and_side_by_side_renders():
    from talking_head.bench import end_to_end
    (row,) = end_to_end(1, portraits=("lady_agnew",), clip_id="smile_eyes")
    assert row["portrait"] == "lady_agnew" and row["duration"] == Gallery.default().clip("smile_eyes")["duration"]
    assert all(row[k] > 0 for k in ("cached_s", "upload_s", "side_by_side_s"))
