"""Media bytes on the local filesystem.

Layout (the export, purge and tenant-deletion code rely on it):
`<media_dir>/<tenant id>/<media id>`: both parts are UUIDs the application generated, so no
user input ever reaches a path. A file is written under a temporary name in the same
directory and renamed into place only when complete, so a reader never sees half a file.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO


class LocalMediaStorage:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def tenant_dir(self, tenant_id: uuid.UUID) -> Path:
        return self.root / str(uuid.UUID(str(tenant_id)))

    def path(self, tenant_id: uuid.UUID, media_id: uuid.UUID) -> Path:
        # uuid.UUID() re-parses both ids: a str that is not a UUID cannot become a path.
        return self.tenant_dir(tenant_id) / str(uuid.UUID(str(media_id)))

    def save(self, tenant_id: uuid.UUID, media_id: uuid.UUID, chunks: Iterable[bytes]) -> None:
        """Write the chunks; on any error (including one raised by the chunk iterator, such
        as a size limit) nothing is left behind."""
        final = self.path(tenant_id, media_id)
        final.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        partial = final.with_name(f".{final.name}.part")
        try:
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                for chunk in chunks:
                    handle.write(chunk)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(partial, final)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise

    def open(self, tenant_id: uuid.UUID, media_id: uuid.UUID) -> BinaryIO:
        """The stored bytes; FileNotFoundError when they are gone."""
        return open(self.path(tenant_id, media_id), "rb")  # the caller streams and closes it

    def delete(self, tenant_id: uuid.UUID, media_id: uuid.UUID) -> None:
        """Remove the file; already gone is fine (the purge may be re-run)."""
        self.path(tenant_id, media_id).unlink(missing_ok=True)

    def delete_tenant(self, tenant_id: uuid.UUID) -> None:
        """Remove every file of a tenant (tenant purge)."""
        shutil.rmtree(self.tenant_dir(tenant_id), ignore_errors=True)
