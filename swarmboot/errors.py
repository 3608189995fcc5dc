"""Error types. Library code raises these; the command line turns them into one clear message."""

from __future__ import annotations


class SwarmbootError(Exception):
    """An error the user can act on: `str(error)` says what went wrong, `hint` what to do about it."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class ConfigError(SwarmbootError):
    """The configuration file or an environment variable is invalid."""


class UsageError(SwarmbootError):
    """The command line or an argument is invalid (bad name, unknown object, conflicting options)."""

    exit_code = 2


class NotFoundError(SwarmbootError):
    """A named object (image, version, node, group…) does not exist."""


class ConflictError(SwarmbootError):
    """The object exists already, is in use or is locked by another command."""


class MissingToolError(SwarmbootError):
    """An external program is not installed."""

    def __init__(self, tool: str, package: str) -> None:
        super().__init__(
            f"the program '{tool}' is not installed",
            hint=f"install it with: apt-get install {package}",
        )
        self.tool = tool
        self.package = package


class CommandError(SwarmbootError):
    """An external command failed. The message shows the command (copy-pasteable) and its stderr."""

    def __init__(self, argv: list[str], returncode: int, stderr: str, stdout: str = "") -> None:
        import shlex

        tail = "\n".join(stderr.strip().splitlines()[-25:])
        message = f"command failed with exit code {returncode}: {shlex.join(argv)}"
        if tail:
            message += "\n" + "\n".join("  | " + line for line in tail.splitlines())
        super().__init__(message)
        self.argv = argv
        self.returncode = returncode
        self.stderr = stderr
        self.stdout = stdout
