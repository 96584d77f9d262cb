"""Secrets generated on first start into [other] var_dir, readable by this user only."""
from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path


def read_or_create(path: Path, nbytes: int = 32) -> str:
    """The secret stored at `path`, generating it (mode 0600) when the file does not exist yet."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written whole under a temporary name (mkstemp: mode 0600), then linked into place:
        # link fails when the name exists, so of several processes starting at once exactly
        # one secret wins, and no process can read the file before its secret is in it.
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(nbytes) + "\n")
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process was first: use its secret
        finally:
            os.unlink(temporary)
    secret = path.read_text().strip()
    if not secret:
        raise ValueError(f"{path} is empty: delete it to have a new secret generated")
    return secret
