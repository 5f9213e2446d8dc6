"""Service output: capture, framing, rotation, forwarding, tails (docs/logs.md).

One owner: `LogHub` gives children pipes and is the only writer of log files; see
`_pump` (threads, backpressure, drop), `_framing` (lines, timestamps, JSON), `_files`
(rotation, retention, gzip, disk full), `_forward` (journald, syslog, Event Log),
`_ring` (tails), `_console` (the foreground `name |` view), `_own` (herder.log).
"""

from herder.logs._framing import Framer, Record, rfc3339
from herder.logs._hub import LogHub

__all__ = ["LogHub", "Framer", "Record", "rfc3339"]
