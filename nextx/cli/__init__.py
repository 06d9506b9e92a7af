"""The `nextx` command line: thin commands over the Python API."""
