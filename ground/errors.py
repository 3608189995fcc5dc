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


def _tail(text: str, lines: int = 25) -> str:
    tail = "\n".join(text.strip().splitlines()[-lines:])
    return "\n" + "\n".join("  | " + line for line in tail.splitlines()) if tail else ""


def _outcome(returncode: int) -> str:
    """'exit code 3', or 'killed by signal SIGKILL' for a negative return code."""
    if returncode >= 0:
        return f"failed with exit code {returncode}"
    import signal

    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    return f"was killed by {name}"


class CommandError(SwarmbootError):
    """An external command failed. The message shows the command (copy-pasteable) and its stderr;
    `killed` is true when a signal ended it (`returncode` is then minus the signal number)."""

    def __init__(self, argv: list[str], returncode: int, stderr: str, stdout: str = "") -> None:
        import shlex

        super().__init__(f"command {_outcome(returncode)}: {shlex.join(argv)}" + _tail(stderr))
        self.argv = argv
        self.returncode = returncode
        self.stderr = stderr
        self.stdout = stdout

    @property
    def killed(self) -> bool:
        return self.returncode < 0


class CommandTimeout(CommandError):
    """A command ran longer than its timeout and was stopped. `stdout`/`stderr` hold what it wrote
    until then; `returncode` is what it ended with once stopped."""

    def __init__(self, argv: list[str], timeout: float, stderr: str, stdout: str = "") -> None:
        import shlex

        message = f"command ran longer than {timeout:g} s and was stopped: {shlex.join(argv)}"
        SwarmbootError.__init__(self, message + _tail(stderr or stdout))
        self.argv = argv
        self.timeout = timeout
        self.returncode = -15
        self.stderr = stderr
        self.stdout = stdout
