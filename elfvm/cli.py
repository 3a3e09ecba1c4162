"""The thin command-line layer: command names, options, exit codes. No domain logic here.

Subcommands live in elfvm/commands/ and are imported only when run, so `elfvm layout` does not
pay for the MMU model and vice versa (start-up time is part of every command's cost).
"""

from __future__ import annotations

import importlib
import sys

import click

from elfvm import __version__
from elfvm.errors import ElfvmError

COMMANDS = {
    "layout": ("elfvm.commands.layout", "layout", "Predict the initial memory map of an i386 program."),
    "translate": ("elfvm.commands.translate", "translate",
                  "Walk an address through segmentation and paging."),
    "simulate-run": ("elfvm.commands.simulate_run", "simulate_run", "Demand paging, TLB and swap over memory traces."),
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
            click.echo(f"elfvm: {e.message}", err=True)
            ctx.exit(e.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
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


def main(argv=None):
    """Console-script entry point."""
    try:
        cli.main(args=argv, prog_name="elfvm")
    except KeyboardInterrupt:
        click.echo("elfvm: interrupted", err=True)
        sys.exit(130)
