"""The thin command-line layer: command names, options, exit codes. No domain logic here.

Subcommands live in elfvm/commands/ and are imported only when run, so `elfvm layout` does not
pay for the MMU model and vice versa (start-up time is part of every command's cost).
"""

from __future__ import annotations

import gc
import importlib
import os
import sys

import click

from elfvm import __version__
from elfvm.commands.options import escape
from elfvm.errors import ElfvmError
from elfvm.startup import fewer_collections, quiet_blas

COMMANDS = {
    "layout": ("elfvm.commands.layout", "layout", "Predict the initial memory map of an i386 program."),
    "translate": ("elfvm.commands.translate", "translate",
                  "Walk an address through segmentation and paging."),
    "simulate-run": ("elfvm.commands.simulate_run", "simulate_run",
                     "Run a program or a memory trace: demand paging, TLB, swap, replacement."),
    "eat": ("elfvm.commands.eat", "eat", "Effective access time: the lecture's formulas, no trace."),
    "quiz": ("elfvm.commands.quiz", "quiz", "The lecture's exercises on real programs, checked by elfvm."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        try:
            return getattr(importlib.import_module(module), attr)
        except ImportError:
            return None

    def invoke(self, ctx):
        """Every error is one line on stderr and a documented exit code, never a traceback."""
        try:
            return super().invoke(ctx)
        except ElfvmError as e:
            click.echo(f"elfvm: {escape(e.message)}", err=True)
            ctx.exit(e.exit_code)
        except click.exceptions.UsageError as e:    # one line, as every elfvm error
            hint = f" (see '{e.ctx.command_path} --help')" if e.ctx is not None else ""
            click.echo(f"elfvm: {escape(e.format_message())}{hint}", err=True)
            ctx.exit(e.exit_code)
        except click.ClickException as e:
            e.message = escape(e.message)        # a bad value is echoed back: never raw bytes
            raise
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise
        except BrokenPipeError:
            ctx.exit(0)
        except KeyboardInterrupt:           # Ctrl-C before a command installs its own handling
            click.echo("elfvm: interrupted", err=True)
            ctx.exit(130)
        except Exception as e:
            click.echo(f"elfvm: internal error: {type(e).__name__}: {e}", err=True)
            ctx.exit(1)

    def format_commands(self, ctx, formatter):
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="elfvm")
def cli():
    """elfvm: what really happens in memory when Linux runs a 32-bit i386 ELF program.

    \b
    Examples:
      elfvm layout fixtures/bin/hello_pie
      elfvm layout --format maps fixtures/bin/hello_static
    """


def exit_status(code) -> int:
    """The status SystemExit(code) gives, as the interpreter does: None is 0, an int itself,
    anything else is printed to stderr and gives 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF if code >= 0 else code % 256
    print(code, file=sys.stderr)
    return 1


def main(argv=None):
    """The command line itself. The process starts in elfvm.__main__.main (the console script
    and `python -m elfvm`), which applies the interpreter settings before click is imported;
    they are applied here again (idempotent) for a console script installed before that."""
    quiet_blas()
    fewer_collections()
    try:
        rc = cli.main(args=argv, prog_name="elfvm", standalone_mode=False)
    except click.ClickException as e:
        e.message = escape(e.message)            # the group's own errors (unknown command...)
        e.show()
        sys.exit(e.exit_code)
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo("elfvm: interrupted", err=True)
        sys.exit(130)
    except SystemExit as e:         # a command's sys.exit(status) (simulate-run PROGRAM passes
        code = exit_status(e.code)  # the guest's): the same fast exit, not the interpreter's
    else:                           # shutdown (a last full collection alone is ~15 ms)
        code = rc if isinstance(rc, int) else 0
    # The process ends here. The interpreter's own shutdown would then free, one by one, every
    # object and module the imports made (numpy's, unicorn's, click's, pyelftools' and elfvm's):
    # ~20 ms of a 0.2 s `simulate-run` (measured: main() returning to the exit), for memory the
    # exit frees anyway. What a command opened it has closed (`with` blocks, the trace writer
    # and swap file closed at the end of a run); nothing registered with atexit has work the
    # exit does not do (unicorn's uc_close). So: flush the standard streams and leave.
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:          # None: started with that descriptor closed
                stream.flush()
    except (OSError, ValueError):       # a closed or broken stdout: the interpreter's way
        gc.freeze()                     # (its last collection would walk every object)
        sys.exit(code)
    os._exit(code)
