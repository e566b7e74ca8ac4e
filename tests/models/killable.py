"""Child process for the kill tests: a search or a synthesis that announces its progress on
stdout and can stop in the middle of a write (until the parent kills it; no sleeping).

    python killable.py search|search-released|synthesize WORKDIR HANG AFTER
search-released: the search keeps its rows in the shards, not in memory (rows_in_memory=False).
HANG: none (announce, and wait on stdin after the AFTER-th PREDICT or WROTE, so the parent's kill
always lands there, however busy the machine), save (a checkpoint's file: a shard of rows, then analysis.json),
image (a synthetic PNG), manifest (its line): the AFTER-th such write stops halfway and waits on
stdin; workers: a search that renders in 2 worker processes and just announces.
"""

import glob
import io
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
        real_atomic = augment._write_atomic

        def write_atomic(path, content, durable=True):
            if not nth():
                return real_atomic(path, content, durable)
            import tempfile  # what a save does, stopped halfway through its temporary file

            fd, _ = tempfile.mkstemp(prefix=augment._temporary_prefix(path), suffix=".tmp",
                                     dir=os.path.dirname(os.path.abspath(path)))
            if callable(content):  # a shard of rows: what np.savez writes
                buffer = io.BytesIO()
                content(buffer)
                content = buffer.getvalue()
            data = content.encode() if isinstance(content, str) else content
            os.write(fd, data[:len(data) // 2])
            announce(f"FILE {os.path.basename(path)}")
            stop_here()

        augment._write_atomic = write_atomic
    elif hang == "image":
        real_temporary = augment._write_temporary

        def write_temporary(folder, target, content):
            if not nth():
                return real_temporary(folder, target, content)
            real_temporary(folder, target, content[:len(content) // 2])  # a PNG cut in half
            stop_here()

        augment._write_temporary = write_temporary
    elif hang == "manifest":
        real_write = os.write

        def write(fd, data):
            if nth():  # the journal line: keep only part of it
                real_write(fd, data[:max(1, len(data) - 20)])
                stop_here()
            return real_write(fd, data)

        augment.os.write = write

    progress = {"count": 0}

    def step(marker: str) -> None:  # a point between two pieces of work: with HANG none, the kill point
        announce(marker)
        progress["count"] += 1
        if hang == "none" and progress["count"] == after:
            sys.stdin.read()

    def predict(images):
        step("PREDICT")
        return oracles.bright(images)

    augmenter = augment.ImageAugmenter(predict, checkpoint_seconds=0, **SEARCH)
    if mode in ("search", "search-released"):
        workers = {"num_workers": 2} if hang == "workers" else {}
        augmenter.search_randomization_boundaries(files, None, 0.1, os.path.join(work, "analysis.json"),
                                                  images_in_flight=1, rows_in_memory=mode == "search", **workers)
    else:
        real_add = augment._SyntheticFolder.add

        def add(self, entry, files):
            real_add(self, entry, files)
            step("WROTE")

        augment._SyntheticFolder.add = add
        augmenter.load_analysis(os.path.join(work, "analysis.json"))
        augmenter.synthesize_more(files, realism=0, count=12, output_dir=os.path.join(work, "out"),
                                  preview_html=None)
    announce("DONE")
    return 0


if __name__ == "__main__":  # the guard render worker processes need
    sys.exit(main())
