"""The ``snas`` subcommands."""
