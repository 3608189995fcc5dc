"""Logs for the systemd journal, or plain lines on a terminal.

Under systemd (the unit's stdout/stderr is the journal: $JOURNAL_STREAM names that stream) each
line starts with its syslog priority, `<3>` … `<7>` (sd-daemon(3)); journald strips it and files
the line with that priority (`journalctl -u swarmboot -p warning`), and adds the time itself.
Elsewhere: "LEVEL name: message". Never a token: the HTTP access log is off, tokens travel in
headers and POST bodies only (server/api/access.py).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


def on_journal(stream: TextIO) -> bool:
    """True when `stream` is the journal stream systemd connected ($JOURNAL_STREAM = DEV:INODE)."""
    value = os.environ.get("JOURNAL_STREAM", "")
    dev, _, ino = value.partition(":")
    if not (dev.isdigit() and ino.isdigit()):
        return False
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return st.st_dev == int(dev) and st.st_ino == int(ino)


class JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{PRIORITY.get(record.levelno, 6)}>"
        text = super().format(record)
        return "\n".join(prefix + line for line in text.splitlines())


def formatter_for(stream: TextIO) -> logging.Formatter:
    if on_journal(stream):
        return JournalFormatter("%(name)s: %(message)s")
    return logging.Formatter("%(levelname)s %(name)s: %(message)s")


def setup(level: str, stream: TextIO = sys.stderr) -> None:
    """The server's logging: one handler on `stream`, the journal's format when it is the journal."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter_for(stream))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
