"""Errors that reach the user as one line and a documented exit code (see README)."""

EXIT_OK = 0
EXIT_USAGE = 2       # missing file, not a file, bad option, bad address/input
EXIT_ERRNO = 3       # execve() would fail and return an errno
EXIT_KILLED = 4      # execve() passes the point of no return and the process is killed
EXIT_VERIFY = 1      # --verify found a difference between prediction and live kernel


class ElfvmError(Exception):
    """Base class: carries the exit code and a one-line message."""

    exit_code = 1

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class UsageError(ElfvmError):
    exit_code = EXIT_USAGE
