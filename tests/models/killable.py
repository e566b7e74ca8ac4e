"""Child process for the kill tests: a search or a synthesis that announces its progress on
stdout and can stop in the middle of a write (until the parent kills it; no sleeping).

    python killable.py search|synthesize WORKDIR HANG AFTER
HANG: none (just announce), save (analysis checkpoint), image (a synthetic PNG), manifest (its
line): the AFTER-th such write stops halfway and waits on stdin.
"""

import glob
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(os.path.dirname(HERE)), HERE]

import oracles  # noqa: E402

import augment  # noqa: E402

SEARCH = {"augmentations": ["Brighten", "Darken"], "batch_size": 8, "progress": False}


def announce(text: str) -> None:
    print(text, flush=True)


def stop_here() -> None:
    announce("WRITING")
    sys.stdin.read()  # the parent kills this process while it waits here


def main() -> int:
    mode, work, hang, after = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    files = sorted(glob.glob(os.path.join(work, "imgs", "*.png")))
    calls = {"count": 0}

    def nth() -> bool:
        calls["count"] += 1
        return calls["count"] == after

    if hang == "save":
        real_dump = json.dump

        def dump(obj, handle, **options):
            if not nth():
                return real_dump(obj, handle, **options)
            text = json.dumps(obj, **options)
            handle.write(text[:len(text) // 2])
            handle.flush()
            stop_here()

        augment.json.dump = dump
    elif hang == "image":
        from PIL import Image

        real_save = Image.Image.save

        def save(self, target, *args, **options):
            if not nth():
                return real_save(self, target, *args, **options)
            import io

            buffer = io.BytesIO()
            real_save(self, buffer, *args, **options)
            with open(target, "wb") as handle:
                handle.write(buffer.getvalue()[:len(buffer.getvalue()) // 2])
            stop_here()

        Image.Image.save = save
    elif hang == "manifest":
        real_fsync = os.fsync

        def fsync(fd):
            if nth() and os.fstat(fd).st_size > 20:  # the journal line is written: keep only part of it
                os.ftruncate(fd, os.fstat(fd).st_size - 20)
                stop_here()
            return real_fsync(fd)

        augment.os.fsync = fsync

    def predict(images):
        announce("PREDICT")
        return oracles.bright(images)

    augmenter = augment.ImageAugmenter(predict, checkpoint_seconds=0, **SEARCH)
    if mode == "search":
        augmenter.search_randomization_boundaries(files, None, 0.1, os.path.join(work, "analysis.json"),
                                                  images_per_chunk=1)
    else:
        real_write = augment.ImageAugmenter._write_synthetic

        def write(folder, entry, image, label, kind):
            real_write(folder, entry, image, label, kind)
            announce("WROTE")

        augment.ImageAugmenter._write_synthetic = staticmethod(write)
        augmenter.load_analysis(os.path.join(work, "analysis.json"))
        augmenter.synthesize_more(files, realism=0, count=12, output_dir=os.path.join(work, "out"),
                                  preview_html=None)
    announce("DONE")
    return 0


if __name__ == "__main__":
    sys.exit(main())
