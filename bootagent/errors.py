"""The agent's error types. Each names what went wrong (`message`) and what to check (`hint`).

The stage runner turns any of them into one clear message on the console, an event for the server
and the rescue shell.
"""

from __future__ import annotations

from ground.errors import SwarmbootError


class AgentError(SwarmbootError):
    """A boot-agent failure the administrator can act on."""


class NetworkError(AgentError):
    """The boot interface was not found or got no address in time."""


class ServerError(AgentError):
    """No server answered usefully within the deadline."""


class UnknownNodeError(ServerError):
    """The server answered 404: it does not know this node (or MAC)."""


class PlanRejected(ServerError):
    """The server refused the request (400/401/403) or sent a plan this agent cannot read."""


class ScriptError(AgentError):
    """A pre/part/post script failed or timed out. `output` holds what it printed."""

    def __init__(self, message: str, hint: str = "", output: str = "") -> None:
        super().__init__(message, hint)
        self.output = output


class DownloadError(AgentError):
    """The image could not be downloaded."""


class DownloadStalled(DownloadError):
    """Nothing arrived for longer than the stall timeout."""


class DownloadTimeout(DownloadError):
    """The overall download deadline passed."""


class ImageHashMismatch(DownloadError):
    """The downloaded file's sha256 is not the one in the plan."""


class RootError(AgentError):
    """The root filesystem could not be built at the sysroot."""


class FilesError(AgentError):
    """A node file could not be written into the booted system."""
