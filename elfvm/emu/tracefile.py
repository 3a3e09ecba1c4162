"""`--emit-trace FILE`: a program run's references in valgrind lackey's format.

    I  0804a1b0,3        an instruction fetch (address, length)
     L bffff6c8,4        a data load
     S bffff6c4,4        a data store

`simulate-run --trace FILE` replays it with any policy and memory size. The first process's
references go to FILE, each forked child's to FILE.PID (replay them together with one --trace
each: the engine interleaves them by --quantum, not as the scheduler did). The trace starts with
one ` S page,4096` record for each page execve left present (the stack, the bss tail that padzero
cleared): the run counts those as execve's, a replay as first touches. Kernel copies to and
from user memory (read(2) filling a buffer, write(2) reading one) are ` S`/` L` records too:
they are references of the run, though lackey cannot see them.
"""

from __future__ import annotations


class TraceWriter:
    def __init__(self, path: str, first_pid: int):
        self.path = path
        self.first_pid = first_pid
        self.files: dict[int, object] = {}
        self.paths: list[str] = []

    def _file(self, pid: int):
        f = self.files.get(pid)
        if f is None:
            path = self.path if pid == self.first_pid else f"{self.path}.{pid}"
            try:
                f = open(path, "w", buffering=1 << 20)
            except OSError as e:
                from elfvm.errors import UsageError

                raise UsageError(f"--emit-trace {path}: {e.strerror}") from None
            f.write(f"==elfvm== references of pid {pid} (lackey format)\n")
            self.files[pid] = f
            self.paths.append(path)
        return f

    def record(self, pid: int, rec: str, addr: int, size: int) -> None:
        line = f"I  {addr:08x},{size}\n" if rec == "I" else f" {rec} {addr:08x},{size}\n"
        self._file(pid).write(line)

    def close(self) -> None:
        for f in self.files.values():
            f.close()
