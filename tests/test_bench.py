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


def test_bench_quality_prints_the_self_reenactment_table_and_the_trackers_own_score(capsys):
    """What a researcher runs for DESIGN.md's protocol: one clip, every eighth frame, through the CLI, with
    the tables for the optional refinement and expression detail."""
    from talking_head.cli import main
    assert main(["bench", "--quality", "--no-speed", "--clips", "smile_eyes", "--stride", "8"]) == 0
    out = capsys.readouterr().out
    assert "Engine alone" not in out, "--no-speed still timed the engine"
    (row,) = [line for line in out.splitlines() if line.startswith("| smile_eyes |")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    ssim, static_ssim, akd, static_akd, ratio = (float(cells[i]) for i in (6, 7, 9, 10, 11))
    assert ssim > static_ssim and akd < static_akd, row  # the clip's smile is followed, not stood still
    assert 0 < ratio < 0.5, row
    # Then the tracker's own score (AKD / ratio), and each option's (AKD ratio / SSIM gain), in that order.
    tracker, refine, detail = [line.split()[1].split("/") for line in out.splitlines() if line.startswith("smile_eyes ")]
    assert 0 < float(tracker[0]) < 0.1 and 0 < float(tracker[1]) < 1, tracker
    for option in (refine, detail):
        assert 0 < float(option[0]) < 0.5 and float(option[1]) > 0, option
