"""Program mode of `simulate-run`: a real i386 program on Unicorn, with elfvm as its kernel and MMU.

    from elfvm.emu import RunOptions, run_program
    report = run_program(RunOptions("fixtures/bin/hello_static"))

Needs the `emu` extra (unicorn). See elfvm.emu.run for the entry point and elfvm.render.program for
the renderers.
"""

from elfvm.emu.run import ProgramRejected, RunOptions, RunReport, run_program

__all__ = ["RunOptions", "RunReport", "run_program", "ProgramRejected"]
