"""The host below elfvm: ptrace (elfvm.host.ptrace) and /proc (elfvm.host.procfs)."""
