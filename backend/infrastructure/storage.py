"""Files kept outside the database: the tenants' media, and the operator archives.

Media layout (the media area, the export, dump/restore, the tenant purge and the retention
purge all go through `LocalMediaStorage`): `<media_dir>/<tenant id>/<media id>`, both parts
UUIDs the application generated, so no user input ever reaches a path. A file is written under
a temporary name starting with a dot and renamed into place only when complete, so a reader
never sees half a file; dot names are partial uploads and are neither listed nor exported.
Files are only ever read without following a symlink, so nothing outside the tenant's
directory can end up in a download or an export.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import BinaryIO


class UnsafeName(ValueError):
    """A relative name that would leave the directory it is meant for."""


def safe_relative(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or not path.parts or any(p in ("", ".", "..") for p in path.parts):
        raise UnsafeName(name)
    return path


@contextmanager
def write_into_place(final: Path) -> Iterator[BinaryIO]:
    """A file (mode 0600) written under a unique dot name next to `final` and renamed into
    place, after an fsync, only when the block completes; on any error, including one raised
    inside the block, nothing is left behind. Used for media and operator archives alike."""
    fd, partial = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, final)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


def _file_count(folder: Path) -> int:
    return sum(len(names) for _, _, names in os.walk(folder))


class LocalMediaStorage:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def tenant_dir(self, tenant_id: uuid.UUID) -> Path:
        # Re-parsing makes sure only a UUID ever becomes this path component.
        return self.root / str(uuid.UUID(str(tenant_id)))

    def path(self, tenant_id: uuid.UUID, media_id: uuid.UUID) -> Path:
        # uuid.UUID() re-parses both ids: a str that is not a UUID cannot become a path.
        return self.tenant_dir(tenant_id) / str(uuid.UUID(str(media_id)))

    def save(self, tenant_id: uuid.UUID, media_id: uuid.UUID, chunks: Iterable[bytes]) -> None:
        """Write the chunks; on any error (including one raised by the chunk iterator, such
        as a size limit) nothing is left behind."""
        final = self.path(tenant_id, media_id)
        final.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with write_into_place(final) as handle:
            for chunk in chunks:
                handle.write(chunk)

    def open(self, tenant_id: uuid.UUID, name: uuid.UUID | str) -> BinaryIO:
        """The bytes of a media id, or of a name `files` listed, opened without following a
        symlink; FileNotFoundError when they are gone. The caller streams and closes it."""
        if isinstance(name, uuid.UUID):
            path = self.path(tenant_id, name)
        else:
            path = self.tenant_dir(tenant_id).joinpath(*safe_relative(name).parts)
        return os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), "rb")

    def files(self, tenant_id: uuid.UUID) -> Iterator[str]:
        """Relative POSIX names of the tenant's regular files, sorted, partial uploads skipped
        (the export and the operator archive take every one of them)."""
        base = self.tenant_dir(tenant_id)
        if not base.is_dir():
            return
        for folder, dirs, names in os.walk(base):  # never follows symlinked directories
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(names):
                path = Path(folder, name)
                try:
                    regular = stat.S_ISREG(path.lstat().st_mode)
                except FileNotFoundError:  # removed while we walk
                    continue
                if regular and not name.startswith("."):
                    yield path.relative_to(base).as_posix()

    def delete(self, tenant_id: uuid.UUID, media_id: uuid.UUID) -> None:
        """Remove the file; already gone is fine (the purge may be re-run)."""
        self.path(tenant_id, media_id).unlink(missing_ok=True)

    def delete_tenant(self, tenant_id: uuid.UUID) -> int:
        """Remove every file of a tenant (tenant purge, failed restore); returns how many
        there were, 0 when the directory is already gone. An error is raised, not ignored:
        the purge step must fail, be audited and be re-run."""
        base = self.tenant_dir(tenant_id)
        if not base.exists():
            return 0
        count = _file_count(base)
        shutil.rmtree(base)
        return count

    def install(self, tenant_id: uuid.UUID, staged: Path) -> int:
        """Move a staged directory of files (a restored archive's) into place as the tenant's
        media; returns how many files it holds."""
        target = self.tenant_dir(tenant_id)
        count = _file_count(staged)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():  # a re-run after a failed commit: start from the archive again
            shutil.rmtree(target)
        shutil.move(str(staged), str(target))
        return count


class LocalExportFiles:
    """Operator archives and backups under the exports directory, for the retention purge."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def older_than(self, cutoff: datetime) -> list[Path]:
        if not self.root.is_dir():
            return []
        limit = cutoff.timestamp()
        found = []
        for folder, dirs, names in os.walk(self.root):
            dirs.sort()
            for name in sorted(names):
                path = Path(folder, name)
                info = path.lstat()
                if stat.S_ISREG(info.st_mode) and info.st_mtime < limit:
                    found.append(path)
        return found

    def remove(self, path: Path) -> bool:
        path = Path(path)
        if self.root.resolve() not in path.resolve().parents:
            raise UnsafeName(str(path))
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True
