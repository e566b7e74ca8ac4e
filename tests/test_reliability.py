"""Fault injection: kills at any moment, bad images, failing models, damaged caches, hostile text.

Kill tests run the work in a child process (tests/models/killable.py) and SIGKILL it at a
point it announces on stdout; nothing here sleeps.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, BrightnessModel, uniform_images, wait_for, write_pngs
from models import oracles
from models.killable import SEARCH

import augment

KILLABLE = str(ROOT / "tests" / "models" / "killable.py")
VALUES = [20, 45, 70, 95, 120, 30]
PER_IMAGE = 1 + 2 * 10  # the original + Brighten and Darken at 10 intensities


def kill_at(mode: str, work: Path, hang: str, after: int, marker: str) -> None:
    """Run the child until it has announced ``marker`` ``after`` times, then SIGKILL it."""
    child = subprocess.Popen([sys.executable, KILLABLE, mode, str(work), hang, str(after)],
                             stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True)
    seen = 0
    for line in child.stdout:
        seen += line.strip() == marker
        if seen >= (after if hang == "none" else 1) or line.strip() == "DONE":
            break
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stdout.close()
    child.stdin.close()
    assert child.returncode == -signal.SIGKILL and seen, "the child finished before the kill point"


def search(files, path, model=None):
    return augment.ImageAugmenter(model or oracles.bright, **SEARCH).search_randomization_boundaries(
        files, None, 0.1, path)


@pytest.fixture()
def work(tmp_path):
    write_pngs(tmp_path / "imgs", uniform_images(VALUES))
    return tmp_path


# save: a checkpoint writes a shard of rows, then analysis.json listing it. Writes 1-2: the first
# checkpoint (every row so far); 3-4: the second, which appends only the rows new since the first.
# search-released: a search that keeps its rows in the shards only (rows_in_memory=False), whose
# second checkpoint writes the rows it holds as pending.
@pytest.mark.parametrize(("mode", "hang", "after"), [
    *[("search", hang, after) for hang, after in [("none", 2), ("none", 9), ("none", 17), ("save", 1), ("save", 2),
                                                  ("save", 3), ("save", 4)]],
    ("search-released", "none", 9), ("search-released", "save", 3), ("search-released", "save", 4)])
def test_a_search_killed_at_any_point_resumes_to_the_uninterrupted_analysis(work, mode, hang, after):
    files = sorted(str(p) for p in (work / "imgs").glob("*.png"))
    reference = search(files, None)
    path = work / "analysis.json"
    kill_at(mode, work, hang, after, "PREDICT" if hang == "none" else "WRITING")
    saved = augment.load_analysis(path) if path.exists() else None
    missing = [sum(saved is None or saved.curves[name].diff_errors[k] is None for name in ("Brighten", "Darken"))
               for k in range(len(files))]
    assert sum(missing) > 0
    model = BrightnessModel()
    resumed = search(files, path, model)
    assert resumed.to_json()["augmentations"] == reference.to_json()["augmentations"]
    # only what the last checkpoint did not hold: per image its original and each missing augmentation
    assert model.calls == sum(1 + m * (PER_IMAGE - 1) // 2 for m in missing if m)
    rows = work / "analysis.json.rows"
    assert not [name for name in os.listdir(work) + os.listdir(rows) if name.endswith(".tmp")]  # no half-written
    listed = {entry["file"] for entry in json.loads(path.read_text())["rows"]["shards"]}
    assert set(os.listdir(rows)) == listed  # a shard the killed checkpoint never listed is gone
    assert augment.load_analysis(path).to_json() == resumed.to_json()


@pytest.mark.parametrize(("hang", "after"), [("none", 3), ("image", 5), ("manifest", 7)])
def test_a_synthesis_killed_at_any_point_completes_with_the_uninterrupted_files(work, hang, after):
    files = sorted(str(p) for p in (work / "imgs").glob("*.png"))
    search(files, work / "analysis.json")
    augmenter = augment.ImageAugmenter(oracles.bright, **SEARCH)
    augmenter.load_analysis(work / "analysis.json")
    augmenter.synthesize_more(files, realism=0, count=12, output_dir=work / "reference", preview_html=None)
    kill_at("synthesize", work, hang, after, "WROTE" if hang == "none" else "WRITING")
    augmenter.synthesize_more(files, realism=0, count=12, output_dir=work / "out", preview_html=None,
                              count_is_total=True)
    out, reference = work / "out", work / "reference"
    entries = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    names = [entry["file"] for entry in entries]
    assert len(names) == len(set(names)) == 12  # no duplicate
    on_disk = sorted(p.name for p in out.iterdir() if p.name not in ("manifest.jsonl", ".augment.lock"))
    assert sorted(names) == on_disk  # no orphan, no temporary
    for name in names:  # none truncated, and each byte-identical to the uninterrupted run's
        assert (out / name).read_bytes() == (reference / name).read_bytes()
        augment.load_image(str(out / name))


# -- bad images ----------------------------------------------------------------------


def bad_images(folder: Path) -> dict[str, str]:
    """One file per case -> the policy for it ("converted" or "skipped")."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    photo = np.full((24, 24, 3), 90, np.uint8)
    Image.fromarray(photo).save(folder / "good.png")
    full = (folder / "good.png").read_bytes()
    (folder / "truncated.png").write_bytes(full[:len(full) // 2])
    (folder / "not-an-image.png").write_text("just some text")
    (folder / "empty.png").write_bytes(b"")
    Image.fromarray(photo[..., 0]).save(folder / "gray.png")
    Image.fromarray(np.dstack([photo, np.full((24, 24), 128, np.uint8)])).save(folder / "rgba.png")
    Image.fromarray(photo).convert("P").save(folder / "palette.png")
    Image.fromarray(np.full((24, 24), 90, np.uint16) * 257).save(folder / "sixteen-bit.png")
    Image.fromarray(photo[:1, :1]).save(folder / "one-pixel.png")
    Image.new("RGB", (8000, 8000), (90, 90, 90)).save(folder / "huge.png", compress_level=1)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: stored 24 wide x 12 high, shown 12 x 24
    Image.fromarray(np.full((12, 24, 3), 90, np.uint8)).save(folder / "exif-rotated.jpg", exif=exif)
    return {"good.png": "converted", "truncated.png": "skipped", "not-an-image.png": "skipped",
            "empty.png": "skipped", "gray.png": "converted", "rgba.png": "converted", "palette.png": "converted",
            "sixteen-bit.png": "converted", "one-pixel.png": "converted", "huge.png": "skipped",
            "exif-rotated.jpg": "converted"}


def test_bad_images_are_converted_or_skipped_and_listed_by_name_never_a_silent_zero(tmp_path):
    policy = bad_images(tmp_path / "imgs")
    files = [str(tmp_path / "imgs" / name) for name in policy]
    augmenter = augment.ImageAugmenter(BrightnessModel(), augmentations=["Brighten"], batch_size=8, progress=False)
    with pytest.warns(UserWarning, match="4 of 11 images skipped"):
        analysis = augmenter.search_randomization_boundaries(files, None, 0.25, tmp_path / "analysis.json")
    skipped = {Path(item["file"]).name: item["reason"] for item in analysis.skipped}
    assert set(skipped) == {name for name, what in policy.items() if what == "skipped"}
    assert "huge.png is 8000x8000 = 64,000,000 pixels, more than max_image_pixels=40,000,000" in skipped["huge.png"]
    assert all(name in reason for name, reason in skipped.items())
    curve = analysis.curves["Brighten"]
    for k, name in enumerate(policy):
        assert (curve.diff_errors[k] is None) == (policy[name] == "skipped"), name
        if policy[name] == "converted":  # a mid-gray image of value 90: Brighten flips it at +0.25
            assert curve.first_failure_intensities[k] == 0.25, name
    assert augment.load_image(files[list(policy).index("exif-rotated.jpg")]).shape == (24, 12, 3)
    assert augment.load_image(files[list(policy).index("sixteen-bit.png")])[0, 0, 0] == 90
    html = Path(augmenter.render_boundaries(tmp_path / "report")).read_text()
    assert "Skipped images (4)" in html and "not-an-image.png" in html and "max_image_pixels" in html
    assert analysis.complete
    with pytest.raises(ValueError, match="every image was skipped"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        augmenter.search_randomization_boundaries(files[1:4], None, 0.25, None)


# -- a model that fails ------------------------------------------------------------------


def flaky(images):
    """Raises on a very dark image, returns None on gray 200, NaN on gray 128."""
    outputs = []
    for image in images:
        mean = float(np.asarray(image).mean())
        if mean < 10:
            raise RuntimeError("model crashed on a dark image")
        outputs.append(None if mean == 200 else (float("nan") if mean == 128 else int(mean > 127)))
    return outputs


def test_on_error_raise_names_the_image_and_augmentation():
    augmenter = augment.ImageAugmenter(flaky, augmentations=["Darken"], batch_size=1, progress=False)
    with pytest.raises(RuntimeError, match="dark image") as raised:
        augmenter.search_randomization_boundaries(uniform_images([60]), None, 0.25, None)
    assert "image array-0, augmentation Darken, intensity" in "".join(raised.value.__notes__)
    with pytest.raises(ValueError, match="returned None") as raised:
        augment.ImageAugmenter(flaky, augmentations=["Brighten"], batch_size=4, progress=False
                               ).search_randomization_boundaries(uniform_images([60, 200]), None, 0.25, None)
    assert "a batch of 4 from image array-0" in "".join(raised.value.__notes__)
    with pytest.raises(ValueError, match="returned NaN"):
        augment.ImageAugmenter(flaky, augmentations=["Brighten"], progress=False
                               ).search_randomization_boundaries(uniform_images([128]), None, 0.25, None)


def test_on_error_skip_records_each_failing_image_and_keeps_the_others(tmp_path):
    def wrong_length(images):
        return flaky(images)[:-1] if len(images) == 3 else flaky(images)

    values = [60, 128, 200]  # 60 is searched; the originals 128, 200 and 5 give NaN, None and a crash
    for predict in (flaky, wrong_length):
        augmenter = augment.ImageAugmenter(predict, augmentations=["Brighten"], batch_size=3, on_error="skip",
                                           progress=False)
        with pytest.warns(UserWarning, match="3 of 4 images skipped"):
            analysis = augmenter.search_randomization_boundaries(uniform_images(values + [5]), None, 0.5, None)
        reasons = [item["reason"] for item in analysis.skipped]
        assert any("image array-1" in r and "returned NaN" in r for r in reasons)
        assert any("image array-2:" in r and "returned None" in r for r in reasons)
        assert any("image array-3" in r and "dark image" in r for r in reasons)
        assert analysis.curves["Brighten"].first_failure_intensities[0] == 0.5  # 60 + 127 > 127


def test_an_image_given_up_on_while_its_boxes_are_moving_is_skipped_not_a_crash():
    from examples import shapes

    images, _ = shapes.make_shapes(8, seed=1)

    def flaky(batch):  # crashes on some augmented images, while other renders of the same image are in flight
        if any(float(np.asarray(image).mean()) % 7 < 0.3 for image in batch):
            raise RuntimeError("flaky")
        return shapes.predict_boxes(batch)

    augmenter = augment.ImageAugmenter(flaky, shapes.box_diff_error, augmentations=["SafeRotate", "Brighten"],
                                       label_format="pascal_voc", batch_size=4, progress=False, on_error="skip")
    with pytest.warns(UserWarning, match="5 of 8 images skipped"):
        analysis = augmenter.search_randomization_boundaries(images, None, 0.1, None, images_in_flight=2)
    assert analysis.curves["SafeRotate"].searched == [0, 3, 7]
    assert all("RuntimeError: flaky" in item["reason"] for item in analysis.skipped)


# -- the cache -----------------------------------------------------------------------------


@pytest.mark.parametrize("content", ["", '{"format": "augment.py analysis", "versi', "{}", '{"hello": 1}', "\x00\xff",
                                     '{"format": "augment.py analysis", "version": 99}'])
def test_a_damaged_or_foreign_cache_is_a_clear_error_and_is_kept_as_a_backup(tmp_path, content):
    path = tmp_path / "analysis.json"
    path.write_bytes(content.encode("utf-8", "surrogateescape") if isinstance(content, str) else content)
    with pytest.raises(ValueError, match=r"analysis.*(truncated|not an augment.py|version 99)"):
        augment.load_analysis(path)
    augmenter = augment.ImageAugmenter(BrightnessModel(), augmentations=["Brighten"], progress=False)
    with pytest.warns(UserWarning, match="not reusing .* kept as .*bak"):
        augmenter.search_randomization_boundaries(uniform_images([50]), None, 0.5, path)
    backups = list(tmp_path.glob("analysis.json.bak-*"))
    assert len(backups) == 1 and backups[0].read_bytes() == content.encode("utf-8", "surrogateescape")
    assert augment.load_analysis(path).complete


def test_a_version_1_cache_from_the_previous_release_is_read(tmp_path):
    images = uniform_images([40, 90])
    path = tmp_path / "analysis.json"
    augment.ImageAugmenter(BrightnessModel(), augmentations=["Brighten"], progress=False
                           ).search_randomization_boundaries(images, None, 0.5, path)
    data = augment.load_analysis(path).to_json()  # one document, as versions 1-3 stored it
    data["version"] = 1
    for record in data["images"]:
        del record["error"]
    for name in os.listdir(tmp_path / "analysis.json.rows"):
        os.unlink(tmp_path / "analysis.json.rows" / name)
    path.write_text(json.dumps(data))
    model = BrightnessModel()
    analysis = augment.ImageAugmenter(model, augmentations=["Brighten"], progress=False
                                      ).search_randomization_boundaries(images, None, 0.5, path)
    assert model.calls == 0 and analysis.curves["Brighten"].first_failure_intensities == [0.5, 0.5]


# -- hostile text ------------------------------------------------------------------------


HOSTILE = ['<img src=x onerror=alert(1)>', '"quoted" \'single\'', "../../escape", "a/b\\c", "nul\x00byte",
           "x" * 5000]


def test_hostile_labels_outputs_and_file_names_are_escaped_and_stay_inside_the_folders(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    files = []
    for k, name in enumerate(["<b>bold<b>.png", "quote\"'.png", "..dots...png", "long" + "y" * 200 + ".png"]):
        path = folder / name
        from PIL import Image

        Image.fromarray(np.full((16, 16, 3), 40 + 30 * k, np.uint8)).save(path)
        files.append(str(path))

    def hostile_predict(images):
        return [HOSTILE[int(np.asarray(i).mean()) % len(HOSTILE)] for i in images]

    augmenter = augment.ImageAugmenter(hostile_predict, augmentations=["Brighten", "SafeRotate"], batch_size=8,
                                       progress=False)
    labels = HOSTILE[:4]
    augmenter.search_randomization_boundaries(files, labels, 0.25, tmp_path / "analysis.json")
    html_path = Path(augmenter.render_boundaries(tmp_path / "report"))
    made, _ = augmenter.synthesize_more(files, labels, realism=0, count=6, output_dir=tmp_path / "synthetic")
    pages = [html_path.read_text(), (tmp_path / "synthetic" / "__preview.html").read_text()]
    for page in pages:
        assert "<img src=x" not in page and "<b>bold<b>" not in page and "\x00" not in page
        assert "&lt;b&gt;bold&lt;b&gt;" in page
    for root in (tmp_path / "report", tmp_path / "synthetic"):
        for path in root.rglob("*"):
            assert path.resolve().is_relative_to(root.resolve())
            assert len(path.name) < 255
    assert all(Path(f).resolve().parent == (tmp_path / "synthetic").resolve() for f in made)


# -- two jobs, planted links, permissions, full disks, orphaned workers ------------------------


def start_and_hold(mode: str, work: Path, hang: str, after: int) -> subprocess.Popen:
    """A child job stopped halfway through a write (holding its lock) until the test kills it."""
    child = subprocess.Popen([sys.executable, KILLABLE, mode, str(work), hang, str(after)],
                             stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True)
    for line in child.stdout:
        if line.strip() == "WRITING":
            return child
    raise AssertionError("the child finished before it held its lock")


def stop(child: subprocess.Popen) -> None:
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stdout.close()
    child.stdin.close()


def test_a_second_search_on_a_live_jobs_cache_fails_at_once_and_leaves_its_files_alone(work):
    files = sorted(str(p) for p in (work / "imgs").glob("*.png"))
    child = start_and_hold("search", work, "save", 2)
    try:
        live = [p.name for p in work.glob(".augment-tmp-analysis.json~*")]
        assert len(live) == 1  # the child's checkpoint, half written
        with pytest.raises(ValueError, match=rf"in use by another augment.py job \(pid {child.pid}\)"):
            search(files, work / "analysis.json", oracles.bright)
        assert [p.name for p in work.glob(".augment-tmp-analysis.json~*")] == live  # not removed under it
        with pytest.raises(ValueError, match=f"pid {child.pid}"):  # other augmentations: refused as well
            augment.ImageAugmenter(oracles.bright, augmentations=["Hue"], progress=False
                                   ).search_randomization_boundaries(files, None, 0.1, work / "analysis.json")
    finally:
        stop(child)
    resumed = search(files, work / "analysis.json")  # the kernel released the killed job's lock
    assert resumed.complete and not list(work.glob(".augment-tmp-*"))


def test_a_second_synthesis_into_a_live_jobs_folder_fails_at_once(work):
    files = sorted(str(p) for p in (work / "imgs").glob("*.png"))
    search(files, work / "analysis.json")
    child = start_and_hold("synthesize", work, "image", 3)
    augmenter = augment.ImageAugmenter(oracles.bright, **SEARCH)
    augmenter.load_analysis(work / "analysis.json")
    try:
        with pytest.raises(ValueError, match=rf"folder .*out is in use by another augment.py job \(pid {child.pid}\)"):
            augmenter.synthesize_more(files, realism=0, count=12, output_dir=work / "out", preview_html=None)
    finally:
        stop(child)
    made, _ = augmenter.synthesize_more(files, realism=0, count=12, output_dir=work / "out", preview_html=None,
                                        count_is_total=True)
    lines = (work / "out" / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == 12 and len(made) == 10  # two were finished before the child stopped


def test_planted_symlinks_are_replaced_never_written_through(tmp_path, uniform_files):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    outside = tmp_path / "outside"
    outside.mkdir()
    report = tmp_path / "report"
    report.mkdir()
    (report / "index.html").symlink_to(victim)
    (report / "frames").symlink_to(outside, target_is_directory=True)
    (tmp_path / "analysis.json").symlink_to(victim)  # not an analysis: kept as a backup, never overwritten
    augmenter = augment.ImageAugmenter(BrightnessModel(), augmentations=["Brighten"], batch_size=8, progress=False)
    with pytest.warns(UserWarning, match="not reusing"):
        augmenter.search_randomization_boundaries(uniform_files, None, 0.25, tmp_path / "analysis.json")
    assert not (tmp_path / "analysis.json").is_symlink() and victim.read_text() == "precious"
    augmenter.render_boundaries(report)
    assert victim.read_text() == "precious" and list(outside.iterdir()) == []
    assert not (report / "index.html").is_symlink() and not (report / "frames").is_symlink()
    assert len(list((report / "frames").glob("*.png"))) == 5
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.jsonl").symlink_to(tmp_path / "elsewhere.jsonl")  # dangling
    with pytest.raises(ValueError, match="manifest.jsonl is a symbolic link"):
        augmenter.synthesize_more(uniform_files, count=2, output_dir=out)
    assert not (tmp_path / "elsewhere.jsonl").exists() and not list(out.glob("synthetic-*"))


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_written_files_get_the_permissions_the_umask_gives(tmp_path, uniform_files, umask):
    previous = os.umask(umask)
    try:
        augmenter = augment.ImageAugmenter(BrightnessModel(), augmentations=["Brighten"], progress=False)
        augmenter.search_randomization_boundaries(uniform_files, None, 0.5, tmp_path / "analysis.json")
        augmenter.synthesize_more(uniform_files, count=2, output_dir=tmp_path / "out")
        augmenter.render_boundaries(tmp_path / "report")
    finally:
        os.umask(previous)
    written = [tmp_path / "analysis.json", *(tmp_path / "out").iterdir(), *(tmp_path / "report").rglob("*.*")]
    modes = {path.name: oct(path.stat().st_mode & 0o777) for path in written if path.is_file()}
    assert len(modes) > 8 and set(modes.values()) == {oct(0o666 & ~umask)}, modes


def test_a_report_rendered_onto_a_full_disk_keeps_the_previous_page(tmp_path, uniform_files):
    import resource

    augmenter = augment.ImageAugmenter(BrightnessModel(), augmentations=["Brighten", "Darken"], progress=False)
    augmenter.search_randomization_boundaries(uniform_files, None, 0.1, tmp_path / "analysis.json")
    page = Path(augmenter.render_boundaries(tmp_path / "report"))
    good = page.read_bytes()
    assert len(good) > 8192

    def full_disk():  # writes past 8 KB fail with EFBIG (Python ignores SIGXFSZ)
        resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))

    result = subprocess.run([sys.executable, str(ROOT / "augment.py"), "report", "--cache",
                             str(tmp_path / "analysis.json"), "--html-dir", str(tmp_path / "report")],
                            capture_output=True, text=True, preexec_fn=full_disk, timeout=300)
    assert result.returncode == 1 and "error: cannot write" in result.stderr and "File too large" in result.stderr
    assert page.read_bytes() == good
    assert not [p for p in (tmp_path / "report").rglob("*") if p.name.startswith(".augment-tmp-")]


def test_render_workers_exit_when_their_search_is_killed(work):
    import time

    psutil = pytest.importorskip("psutil")
    child = subprocess.Popen([sys.executable, KILLABLE, "search", str(work), "workers", "0"],
                             stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True)
    wait_for(child, "PREDICT", 3)
    descendants = psutil.Process(child.pid).children(recursive=True)
    assert len(descendants) >= 2  # the render workers (and the forkserver, the resource tracker)
    stop(child)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        alive = [p for p in descendants if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        if not alive:
            break
        time.sleep(0.2)
    for process in alive:
        process.kill()
    assert not alive, [" ".join(p.cmdline())[-80:] for p in alive]


def test_float_images_are_read_by_their_range_never_silently_black(tmp_path):
    from PIL import Image

    ramp = np.linspace(0, 1, 24 * 24, dtype=np.float32).reshape(24, 24)
    Image.fromarray(ramp, mode="F").save(tmp_path / "unit.tiff")
    Image.fromarray(ramp * 255, mode="F").save(tmp_path / "bytes.tiff")
    Image.fromarray(ramp * 4000 - 10, mode="F").save(tmp_path / "odd.tiff")
    unit, as_bytes = augment.load_image(tmp_path / "unit.tiff"), augment.load_image(tmp_path / "bytes.tiff")
    assert unit.shape == (24, 24, 3) and unit.max() == 255 and np.array_equal(unit, as_bytes)
    with pytest.raises(ValueError, match=r"odd.tiff: its values span \[-10, 3990\]"):
        augment.load_image(tmp_path / "odd.tiff")


def test_a_rows_folder_that_is_a_link_is_never_written_or_cleaned_through(tmp_path, uniform_files):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    foreign = elsewhere / "rows-000001.npz"
    foreign.write_bytes(b"someone else's file")
    cache = tmp_path / "a.json"
    os.symlink(elsewhere, tmp_path / "a.json.rows")
    augmenter = augment.ImageAugmenter(BrightnessModel(), augmentations=["Brighten"], progress=False)
    with pytest.raises(augment.AugmentError, match="a.json.rows, is a symbolic link"):
        augmenter.search_randomization_boundaries(uniform_files, None, 0.1, cache)
    assert sorted(os.listdir(elsewhere)) == ["rows-000001.npz"] and foreign.read_bytes() == b"someone else's file"
    # planted after a search: a save refuses too, and the analysis it would have replaced stays
    os.unlink(tmp_path / "a.json.rows")
    analysis = augmenter.search_randomization_boundaries(uniform_files, None, 0.1, cache)
    saved = cache.read_bytes()
    os.rename(tmp_path / "a.json.rows", tmp_path / "real-rows")
    os.symlink(elsewhere, tmp_path / "a.json.rows")
    with pytest.raises(augment.AugmentError, match="symbolic link"):
        analysis.save(cache)
    assert cache.read_bytes() == saved and sorted(os.listdir(elsewhere)) == ["rows-000001.npz"]


DEEP = "[" * 100_000 + "]" * 100_000  # valid JSON that Python's reader cannot hold (RecursionError)


def test_json_nested_too_deep_is_a_named_error_and_a_search_sets_the_cache_aside(tmp_path, uniform_files):
    cache = tmp_path / "analysis.json"
    cache.write_text(DEEP)
    with pytest.raises(augment.AugmentError, match="analysis.json is truncated or corrupt .nested too deep"):
        augment.load_analysis(cache)
    augmenter = augment.ImageAugmenter(BrightnessModel(), augmentations=["Brighten"], progress=False)
    with pytest.warns(UserWarning, match="not reusing"):
        augmenter.search_randomization_boundaries(uniform_files, None, 0.1, cache)
    assert augment.load_analysis(cache).curves["Brighten"].summarize().searched_images == 3
    assert [p.read_text() for p in tmp_path.glob("analysis.json.bak-*")] == [DEEP]
    (tmp_path / "policy.json").write_text(DEEP)
    with pytest.raises(augment.AugmentError, match="policy file .*policy.json is not JSON: nested too deep"):
        augment.SamplingPolicy.load(tmp_path / "policy.json")
    (tmp_path / "manifest.jsonl").write_text(DEEP + "\n")
    with pytest.raises(augment.AugmentError, match="manifest .* line 1 is not JSON .nested too deep"):
        augment.read_manifest(tmp_path / "manifest.jsonl")
    (tmp_path / "p.json").write_text(DEEP)
    result = subprocess.run([sys.executable, str(ROOT / "augment.py"), "report", "--cache", str(tmp_path / "p.json")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "error: analysis file" in result.stderr and "Traceback" not in result.stderr


def test_huge_weights_are_refused_where_they_are_given_not_mid_training(tmp_path):
    with pytest.raises(augment.AugmentError, match=r"weight for Brighten must be in \[0.0, 1000000.0\], got 1e\+308"):
        augment.SamplingPolicy({"Brighten": 0.3, "Darken": 0.2}, weights={"Brighten": 1e308, "Darken": 1e308})
    policy = augment.SamplingPolicy({"Brighten": 0.3, "Darken": 0.2}, weights={"Brighten": 1e6, "Darken": 1e6})
    policy.save(tmp_path / "policy.json")
    document = json.loads((tmp_path / "policy.json").read_text())
    for entry in document["augmentations"]:
        entry["weight"] = 1e308
    (tmp_path / "policy.json").write_text(json.dumps(document))
    with pytest.raises(augment.AugmentError, match="weight for Brighten must be in"):
        augment.SamplingPolicy.load(tmp_path / "policy.json")
    augmenter = augment.ImageAugmenter(BrightnessModel(), augmentations=["Brighten"], progress=False)
    with pytest.raises(augment.AugmentError, match="weight for Brighten must be in"):
        augmenter.set_augmentation_weight("Brighten", 1e308)
    transform = augment.RealismTransform(policy, seed=0)  # the largest weights allowed still draw
    assert transform(np.zeros((8, 8, 3), np.uint8)).shape == (8, 8, 3)


def test_a_renamed_analysis_says_how_to_bring_its_rows_along(tmp_path, uniform_files):
    augmenter = augment.ImageAugmenter(BrightnessModel(), augmentations=["Brighten"], progress=False)
    augmenter.search_randomization_boundaries(uniform_files, None, 0.1, tmp_path / "analysis.json")
    os.rename(tmp_path / "analysis.json", tmp_path / "baseline.json")  # the natural step before compare
    result = subprocess.run([sys.executable, str(ROOT / "augment.py"), "report", "--cache",
                             str(tmp_path / "baseline.json"), "--html-dir", str(tmp_path / "r")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert f"mv {tmp_path / 'analysis.json.rows'} {tmp_path / 'baseline.json.rows'}" in result.stderr, result.stderr
    subprocess.run(["mv", str(tmp_path / "analysis.json.rows"), str(tmp_path / "baseline.json.rows")], check=True)
    assert augment.load_analysis(tmp_path / "baseline.json").curves["Brighten"].summarize().searched_images == 3


def test_json_with_huge_numbers_or_labels_nested_too_deep_is_a_named_error(tmp_path, uniform_files):
    huge = "1" * 5000  # past Python's 4,300-digit limit for int()
    (tmp_path / "policy.json").write_text(f'{{"format": {huge}}}')
    with pytest.raises(augment.AugmentError, match="policy file .* is not JSON"):
        augment.SamplingPolicy.load(tmp_path / "policy.json")
    (tmp_path / "analysis.json").write_text(f"[{huge}]")
    with pytest.raises(augment.AugmentError, match="analysis.json is truncated or corrupt"):
        augment.load_analysis(tmp_path / "analysis.json")
    (tmp_path / "labels.json").write_text(f"[{huge}, 1, 1]")
    nested = "[" * 600 + "1" + "]" * 600
    (tmp_path / "deep.json").write_text(f"[{nested}, 1, 1]")
    for labels, message in (("labels.json", "cannot read --labels"),
                            ("deep.json", r"labels\[0\] is nested more than 100 levels deep")):
        result = subprocess.run([sys.executable, str(ROOT / "augment.py"), "search", "--predict",
                                 "tests/models/oracles.py:bright", "--images", *uniform_files, "--labels",
                                 str(tmp_path / labels), "--augmentations", "Brighten", "--cache",
                                 str(tmp_path / "a.json")], capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-1500:]
        assert __import__("re").search(message, result.stderr), result.stderr
