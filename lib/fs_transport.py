"""The embedded broker: kombu's filesystem transport with atomic writes and claims.

kombu's own channel writes a message straight into its final name and lets a
consumer move it to /tmp, so a consumer can read a half-written file (the worker
then dies on a JSON error) and, with /tmp on another disk, two consumers can
copy the same message. Here a message is written to a temporary name and
renamed, and a consumer claims one by renaming it within the same folder tree.
"""
from __future__ import annotations

import os
import uuid
from queue import Empty
from time import monotonic

from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

SCHEME = "sensorsfs"


class Channel(filesystem.Channel):
    """A filesystem channel whose messages appear whole and are taken by one consumer."""

    def _put(self, queue, payload, **kwargs):
        """Write `payload` under a name consumers ignore, then rename it into the queue."""
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = final + ".part"  # consumers only take names ending in .<queue>.msg
        with open(partial, "wb") as out:
            out.write(str_to_bytes(dumps(payload)))
        os.replace(partial, final)

    def _get(self, queue):
        """Claim the oldest message of `queue` by renaming it, then read and delete it."""
        wanted = f"{queue}.msg"
        claimed_dir = os.path.join(self.data_folder_in, "claimed")
        os.makedirs(claimed_dir, exist_ok=True)
        for name in sorted(os.listdir(self.data_folder_in)):
            if name.partition(".")[2] != wanted:
                continue
            claimed = os.path.join(claimed_dir, name)
            try:
                os.rename(os.path.join(self.data_folder_in, name), claimed)
            except OSError:
                continue  # another consumer took it first
            with open(claimed, "rb") as message:
                payload = message.read()
            os.remove(claimed)
            return loads(bytes_to_str(payload))
        raise Empty()


class Transport(filesystem.Transport):
    """The filesystem transport with the channel above."""

    Channel = Channel
    driver_name = SCHEME


TRANSPORT_ALIASES.setdefault(SCHEME, f"{__name__}:Transport")
