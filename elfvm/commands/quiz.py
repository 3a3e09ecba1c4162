"""`elfvm quiz`: the lecture's exercises from real programs, answers checked by elfvm itself."""

from __future__ import annotations

import os

import click

from elfvm.commands.options import int_range

EPILOG = """\b
Examples:
  elfvm quiz                          (a seed is picked and printed)
  elfvm quiz --seed 7 --topic refs --topic split -n 4
  elfvm quiz --seed 7 -c              (the same exercises, with answers)
"""


@click.command("quiz", epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--seed", type=int_range(0, (1 << 63) - 1), default=None,
              help="The same seed, the same exercises (default: picked and printed).")
@click.option("--topic", "topics", multiple=True,
              type=click.Choice(["split", "eat", "refs", "symbol", "fault", "brk"]),
              help="Address split, effective access time, reference strings, which mapping holds a "
                   "symbol, which fault an access raises, where brk starts (repeatable; default all).")
@click.option("-n", "--count", type=int_range(1, 100), default=6, show_default=True,
              help="How many exercises.")
@click.option("-c", "--answers", is_flag=True, help="Print the answers (and the command that shows them).")
@click.option("--program", "programs", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="i386 programs to ask about (repeatable; default: the built fixtures).")
def quiz(seed, topics, count, answers, programs):
    """Generate the lecture's exercises on real i386 programs, reproducible by seed; with -c each
    answer comes from elfvm's own model, with the command that shows the working."""
    from elfvm.errors import UsageError
    from elfvm.quiz import TOPICS, QuizError, default_programs, make_quiz

    if seed is None:
        seed = int.from_bytes(os.urandom(3), "little")
    progs = list(programs) or default_programs()
    chosen = list(topics) or list(TOPICS)
    if not topics and not progs:             # no fixtures here: the topics that need none
        from elfvm.quiz import PROGRAM_TOPICS

        chosen = [t for t in TOPICS if t not in PROGRAM_TOPICS]
        click.echo("elfvm: no i386 programs found (make fixtures, or --program PATH): "
                   "asking only " + ", ".join(chosen), err=True)
    try:
        qs = make_quiz(seed, chosen, count, progs)
    except QuizError as e:
        raise UsageError(str(e)) from None
    import textwrap

    click.echo(f"elfvm quiz --seed {seed}" + "".join(f" --topic {t}" for t in topics) +
               (f" -n {count}" if count != 6 else "") + ("  (answers: add -c)" if not answers else " -c"))
    for i, q in enumerate(qs, 1):
        click.echo("")
        click.echo("\n".join(textwrap.wrap(f"{i}. [{q.topic}] {q.text}", 79, subsequent_indent="   ")))
        if answers:
            click.echo("\n".join(textwrap.wrap(f"answer: {q.answer}", 79, initial_indent="   ",
                                               subsequent_indent="     ")))
            click.echo(f"   check: {q.why}")
