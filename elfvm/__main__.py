"""`elfvm` (the console script, pyproject's [project.scripts]) and `python -m elfvm`."""

from elfvm.startup import fewer_collections, quiet_blas


def main(argv=None):
    """The interpreter settings first, then the command line (click and the commands)."""
    quiet_blas()
    fewer_collections()
    from elfvm.cli import main as command_line
    command_line(argv)


if __name__ == "__main__":
    main()
