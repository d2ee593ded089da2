"""The command line: thin Typer commands over r1run's core."""
