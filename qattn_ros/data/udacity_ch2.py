"""Assemble the Udacity Challenge 2 evaluation drive (HMB_3) from the two public places that hold it.

The frames (5,614 centre-camera JPEGs, 640x480, named `<camera stamp ns>.jpg`) and the ground truth
(`CH2_final_evaluation.csv`: frame_id, steering_angle, public) are published apart. This checks every file
against a manifest of names and SHA-256 (`sha256sum` format, so `sha256sum -c` reads it too) and writes the
Challenge 2 test layout that the `ch2_test` reader opens: `<out>/CH2_final_evaluation.csv`, `<out>/center/`
and the manifest it was checked against. A wrong or incomplete input is refused by name, with what to
download; the output folder appears whole or not at all.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..core.atomic import atomic_folder, file_sha256
from ..core.errors import DataError

LABELS = "CH2_final_evaluation.csv"
MANIFEST = "SHA256SUMS"
WHERE_FRAMES = "the public repository peikexin9/deepxplore, folder Driving/testing/center/"
WHERE_LABELS = f"the public repository udacity/self-driving-car, steering-models/community-models/rambo/data/{LABELS}"
# where each input sits inside a clone of its repository
FRAME_FOLDERS = ("Driving/testing/center", "testing/center", "center")
LABEL_FILES = (f"steering-models/community-models/rambo/data/{LABELS}", f"challenges/challenge-2/{LABELS}", LABELS)


def read_manifest(path: Path) -> dict[str, str]:
    """{relative name: SHA-256} from `sha256sum` lines ("<hex>  <name>")."""
    entries = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            digest, _, name = line.partition("  ")
            if len(digest) != 64 or not name:
                raise DataError(f"{path}: line {number}: expected '<sha256>  <name>'")
            entries[name] = digest
    return entries


def write_manifest(folder: Path, path: Path) -> Path:
    """The manifest of an assembled folder: the labels and every frame under center/."""
    names = [LABELS, *(f"center/{p.name}" for p in sorted((folder / "center").glob("*.jpg")))]
    path.write_text("".join(f"{file_sha256(folder / name)}  {name}\n" for name in names))
    return path


def find_input(given: Path, candidates: tuple[str, ...], what: str, where: str) -> Path:
    """`given` itself or the first of `candidates` under it (a clone of the repository)."""
    for candidate in (given, *(given / c for c in candidates)):
        if candidate.is_file() if what == "labels" else candidate.is_dir() and any(candidate.glob("*.jpg")):
            return candidate
    raise DataError(f"{given}: no Challenge 2 {what} found there (looked for {', '.join(candidates)}); "
                    f"download them from {where}")  # fmt: skip


def check_labels(path: Path, expected: str) -> None:
    if file_sha256(path) == expected:
        return
    header = path.read_text(errors="replace").splitlines()[:1]
    if header and header[0].strip().split(",")[:3] == ["frame_id", "steering_angle"]:
        raise DataError(f"{path}: this is Udacity's example submission (final_example.csv: random steering, no "
                        f"'public' column), not the ground truth; download {WHERE_LABELS}")  # fmt: skip
    raise DataError(f"{path}: SHA-256 differs from the manifest's {LABELS} (changed or another file); "
                    f"download {WHERE_LABELS}")  # fmt: skip


def assemble(frames: Path, labels: Path, out: Path, manifest: Path) -> dict:
    """Check the inputs against `manifest` and write the Challenge 2 test layout to `out`.

    `frames`: the folder of JPEGs or a clone holding it; `labels`: the CSV or a clone holding it.
    Returns {"frames", "manifest_sha256", "out"}."""
    expected = read_manifest(manifest)
    center = find_input(Path(frames), FRAME_FOLDERS, "frames", WHERE_FRAMES)
    csv = find_input(Path(labels), LABEL_FILES, "labels", WHERE_LABELS)
    check_labels(csv, expected[LABELS])
    wanted = {name.removeprefix("center/"): digest for name, digest in expected.items() if name.startswith("center/")}
    missing = sorted(name for name in wanted if not (center / name).is_file())
    if missing:
        raise DataError(f"{center}: {len(missing)} of {len(wanted)} frames missing, first: {', '.join(missing[:3])}; "
                        f"download the whole folder from {WHERE_FRAMES}")  # fmt: skip
    changed = sorted(name for name, digest in wanted.items() if file_sha256(center / name) != digest)
    if changed:
        raise DataError(f"{center}: {len(changed)} frame(s) differ from the manifest, first: "
                        f"{', '.join(changed[:3])}; download them again from {WHERE_FRAMES}")  # fmt: skip
    with atomic_folder(out) as tmp:
        (tmp / "center").mkdir(parents=True)
        for name in wanted:
            link_or_copy(center / name, tmp / "center" / name)
        shutil.copyfile(csv, tmp / LABELS)
        shutil.copyfile(manifest, tmp / MANIFEST)
    return {"frames": len(wanted), "manifest_sha256": file_sha256(manifest), "out": str(out)}


def link_or_copy(source: Path, target: Path) -> None:
    """A hard link where both sit on one file system (no second copy of 240 MB), a copy elsewhere."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
