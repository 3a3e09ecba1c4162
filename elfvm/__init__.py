"""elfvm: what really happens in memory when Linux runs a 32-bit i386 ELF program."""

__version__ = "0.1.0"
