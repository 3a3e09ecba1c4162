"""fs/exec.c: opening the program, the argument strings and the stack VMA.

do_execveat_common() opens the file (alloc_bprm -> do_open_execat), checks the argument limits
(bprm_stack_limits), copies the filename, envp and argv strings to the top of a temporary stack
(copy_string_kernel, copy_strings), and, once the binary format has taken over,
setup_arg_pages() moves that stack to STACK_TOP and gives it its initial size.
"""


import errno
import os
import stat
from dataclasses import dataclass, field

from elfvm.kernel.process import ExecFailure
from elfvm.mm.vma import PAGE_MASK, PAGE_SIZE, page_align, page_start

MAX_ARG_STRLEN = 32 * PAGE_SIZE          # one string, including its NUL
ARG_MAX = 32 * PAGE_SIZE                 # the historical minimum room for all strings
_STK_LIM = 8 << 20
STACK_EXPAND = 131072                    # setup_arg_pages: "randomly 32*4k (or 2*64k) pages"


@dataclass(repr=False, eq=False)
class Bprm:
    """The parts of linux_binprm that decide the stack: strings are laid out downwards from p."""

    filename: bytes
    argv: list[bytes]
    envp: list[bytes]
    rlim_stack: int
    p: int                                   # next free byte + 1 (strings grow down from here)
    argmin: int = 0
    vm_end: int = 0                          # top of the temporary stack VMA the strings go into
    exec: int = 0                            # where the filename landed: AT_EXECFN
    strings: list[tuple[int, bytes]] = field(default_factory=list)   # (addr, bytes incl. NUL)
    argv_addrs: list[int] = field(default_factory=list)
    envp_addrs: list[int] = field(default_factory=list)

    @property
    def argc(self) -> int:
        return len(self.argv)

    @property
    def envc(self) -> int:
        return len(self.envp)


def do_open_execat(path: str, *, step: str, root_may_exec: bool | None = None) -> os.stat_result:
    """The checks open_exec() makes: the path resolves, is a regular file, may be executed.

    Raises ExecFailure (before the point of no return) with the errno execve would return.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ExecFailure(errno.ENOENT, step, f"{path}: no such file", False) from None
    except NotADirectoryError:
        raise ExecFailure(errno.ENOTDIR, step, f"{path}: a path component is not a directory",
                          False) from None
    except OSError as e:
        raise ExecFailure(e.errno or errno.EACCES, step, f"{path}: {e.strerror}", False) from None
    if not stat.S_ISREG(st.st_mode):
        raise ExecFailure(errno.EACCES, step, f"{path}: not a regular file", False)
    if root_may_exec is None:
        root_may_exec = os.geteuid() == 0
    # Root (CAP_DAC_OVERRIDE) may execute a file when any of its x bits is set; others need X_OK.
    allowed = bool(st.st_mode & 0o111) if root_may_exec else os.access(path, os.X_OK)
    if not allowed:
        raise ExecFailure(errno.EACCES, step, f"{path}: no execute permission", False)
    try:
        if os.statvfs(path).f_flag & os.ST_NOEXEC:
            raise ExecFailure(errno.EACCES, step, f"{path}: on a noexec mount", False)
    except OSError:
        pass
    return st


def bprm_stack_limits(bprm: Bprm, kernel_ptr_size: int) -> None:
    """fs/exec.c bprm_stack_limits(): room for strings is max(min(6 MiB, rlimit/4), 128 KiB)
    less one pointer per argv/envp entry (counting an empty argv as one)."""
    limit = min(_STK_LIM // 4 * 3, bprm.rlim_stack // 4)
    limit = max(limit, ARG_MAX)
    ptr_size = (max(bprm.argc, 1) + bprm.envc) * kernel_ptr_size
    if limit <= ptr_size:
        raise ExecFailure(errno.E2BIG, "bprm_stack_limits",
                          f"{bprm.argc} args + {bprm.envc} env pointers exceed the {limit} byte limit",
                          False)
    bprm.argmin = bprm.p - (limit - ptr_size)


def copy_string(bprm: Bprm, s: bytes, what: str) -> int:
    """copy_string_kernel / one step of copy_strings: put s + NUL below p, return its address."""
    length = len(s) + 1
    if length > MAX_ARG_STRLEN:
        raise ExecFailure(errno.E2BIG, "copy_strings",
                          f"{what} is {length} bytes, over MAX_ARG_STRLEN ({MAX_ARG_STRLEN})", False)
    bprm.p -= length
    if bprm.p < bprm.argmin:
        raise ExecFailure(errno.E2BIG, "copy_strings",
                          f"argument and environment strings exceed the {bprm.rlim_stack // 4}-byte "
                          f"share of RLIMIT_STACK (or 128 KiB)", False)
    # get_arg_page() grows the temporary stack VMA down to each page it writes
    # (expand_downwards -> acct_stack_growth): the VMA may not get larger than RLIMIT_STACK,
    # and a NULL page makes copy_strings() fail with E2BIG.  This bites when RLIMIT_STACK is
    # below the 128 KiB (ARG_MAX) that bprm_stack_limits() always allows.  __bprm_mm_init()
    # creates that VMA one page long, so strings that fit in its top page need no growth and
    # no rlimit check: RLIMIT_STACK 0 still execs (the program then dies when it first
    # pushes below that page).
    size = bprm.vm_end - page_start(bprm.p)
    if bprm.vm_end and size > PAGE_SIZE and size > bprm.rlim_stack:
        raise ExecFailure(errno.E2BIG, "get_arg_page",
                          f"the strings need a {size:#x}-byte stack, over "
                          f"RLIMIT_STACK ({bprm.rlim_stack:#x})", False)
    bprm.strings.append((bprm.p, s + b"\0"))
    return bprm.p


def copy_all_strings(bprm: Bprm, kernel_ptr_size: int) -> None:
    """do_execveat_common(): limits, filename, envp (last first), argv (last first), and an
    empty argv[0] when argv is empty."""
    bprm_stack_limits(bprm, kernel_ptr_size)
    bprm.vm_end = page_align(bprm.p)
    bprm.exec = copy_string(bprm, bprm.filename, "the filename")
    bprm.envp_addrs = [copy_string(bprm, s, f"envp[{i}]") for i, s in reversed(list(enumerate(bprm.envp)))][::-1]
    bprm.argv_addrs = [copy_string(bprm, s, f"argv[{i}]") for i, s in reversed(list(enumerate(bprm.argv)))][::-1]
    if not bprm.argv:
        bprm.argv = [b""]
        bprm.argv_addrs = [copy_string(bprm, b"", "argv[0]")]


def setup_arg_pages(bprm: Bprm, stack_top: int, rlim_cur: int) -> tuple[int, int]:
    """fs/exec.c setup_arg_pages(): the stack VMA [start, stack_top) after the move.

    The temporary stack already spans the pages the strings occupy; it is then expanded by
    128 KiB, but never beyond RLIMIT_STACK (rounded down to a page).
    """
    vm_start = page_start(bprm.p)
    stack_size = stack_top - vm_start
    rlim = rlim_cur & PAGE_MASK
    stack_expand = min(rlim, stack_size + STACK_EXPAND)
    stack_base = stack_top - stack_expand
    return min(vm_start, page_start(stack_base)), stack_top
