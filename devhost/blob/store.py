"""The embedded blob store: a folder per container under `data_dir/blobs`, a file per blob.

Azure Storage has no links, and a link here must not read a file from outside the store: a
symbolic link to a file inside the store is a blob (its target's content), one that leads
outside it (or nowhere) is skipped and logged once, and links to folders are not followed.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# A file modified this recently may still be being written (`cp` of a large file), so the
# scan leaves it for a later poll. Writers that want no delay write elsewhere, then rename.
QUIET_PERIOD_S = 0.5
TEMPORARY_SUFFIXES = (".tmp", ".partial")
log = logging.getLogger("devhost.blob")


class BlobPathError(ValueError):
    """A blob name cannot be stored as a file under its container."""


@dataclass(frozen=True)
class BlobFile:
    """One version of a blob, as a scan saw it."""

    container: str
    name: str
    path: Path
    size: int
    mtime_ns: int

    @property
    def blob_path(self) -> str:
        """`container/name`, as Azure gives it in the trigger's `BlobTrigger` metadata."""
        return f"{self.container}/{self.name}"

    @property
    def etag(self) -> str:
        return version_tag(self.size, self.mtime_ns)


def version_tag(size: int, mtime_ns: int) -> str:
    """An ETag for a version of a local blob: rewriting the file gives a new one."""
    return f'"0x{mtime_ns:X}-{size:X}"'


def name_problem(blob_path: str) -> str | None:
    """Why a local file cannot be a blob of Azure Storage, whose names are UTF-8, or None."""
    try:
        blob_path.encode("utf-8")
    except UnicodeEncodeError:
        shown = printable(blob_path)
        return (
            f"the blob name '{shown}' is not valid UTF-8 (Azure Storage blob names are);"
            " rename the file in UTF-8"
        )
    return None


def printable(blob_path: str) -> str:
    """A blob path fit for logs and text columns: bytes that are not UTF-8 as \\xNN."""
    return blob_path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def is_ignored_name(name: str) -> bool:
    """Hidden and temporary files are not blobs yet: `.name`, `*.tmp`, `*.partial`."""
    return name.startswith(".") or name.endswith(TEMPORARY_SUFFIXES)


class BlobStore:
    """Maps `container/name` to `root/container/name` and back."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._refused_links: set[str] = set()

    def container_dir(self, container: str) -> Path:
        return self.root / container

    def path_of(self, container: str, name: str) -> Path:
        """The file of a blob; refuses names that would leave the container's folder."""
        segments = name.split("/")
        for segment in segments:
            if segment in ("", ".", "..") or "\0" in segment:
                raise BlobPathError(
                    f"{container}/{name}: blob names here cannot have empty, '.' or '..'"
                    " segments or NUL characters"
                )
        return self.container_dir(container).joinpath(*segments)

    def scan(self, container: str, *, quiet_period_s: float = QUIET_PERIOD_S) -> Iterator[BlobFile]:
        """Yield the settled blobs of a container, depth first, skipping ignored names."""
        settled_before = time.time_ns() - int(quiet_period_s * 1e9)
        yield from self._walk(container, self.container_dir(container), "", settled_before)

    def _walk(
        self, container: str, folder: Path, prefix: str, settled_before: int
    ) -> Iterator[BlobFile]:
        try:
            with os.scandir(folder) as entries:
                listed = sorted(entries, key=lambda entry: entry.name)
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in listed:
            if is_ignored_name(entry.name):
                continue
            name = prefix + entry.name
            try:
                # Do not follow directory links: a link to a parent would loop forever.
                if entry.is_dir(follow_symlinks=False):
                    yield from self._walk(container, Path(entry.path), name + "/", settled_before)
                    continue
                path = Path(entry.path)
                if entry.is_symlink():
                    target = self._link_target(path)
                    if target is None:
                        continue
                    path = target
                elif not entry.is_file(follow_symlinks=False):
                    continue
                stat = path.stat()
            except FileNotFoundError:
                continue  # deleted between listing and stat
            if stat.st_mtime_ns > settled_before:
                continue
            yield BlobFile(container, name, path, stat.st_size, stat.st_mtime_ns)

    def _link_target(self, link: Path) -> Path | None:
        """The file a link leads to, if it is inside the store; None (logged once) if not."""
        target = link.resolve()
        root = self.root.resolve()
        if target.is_relative_to(root) and target.is_file():
            return target
        if str(link) not in self._refused_links:
            self._refused_links.add(str(link))
            log.warning(
                "not following %s: a link that leads outside the blob store %s, or to no file",
                printable(str(link)),
                root,
            )
        return None

    def write_atomically(self, container: str, name: str, data: bytes) -> Path:
        """Write a blob so that readers and scans see the old file or the whole new one."""
        target = self.path_of(container, name)
        target.parent.mkdir(parents=True, exist_ok=True)
        # A dot-name with a .tmp suffix is ignored by scans while it is being written.
        temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        try:
            with open(temporary, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, target)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        return target
