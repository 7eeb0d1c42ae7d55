"""The embedded Celery broker: kombu's file transport, made safe across processes.

kombu writes a message file in place, so a fast-polling worker can read it
half written and die on the JSON. Writing under a name the reader ignores and
renaming it into place makes each message appear whole or not at all.
"""

import os
import uuid
from time import monotonic

from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        tmp = os.path.join(self.data_folder_out, f"tmp-{uuid.uuid4().hex}")
        with open(tmp, "wb") as f:
            f.write(str_to_bytes(dumps(payload)))
        os.replace(tmp, os.path.join(self.data_folder_out, name))


class Transport(filesystem.Transport):
    Channel = Channel


TRANSPORT_ALIASES["flotilla-fs"] = "wui.broker:Transport"
