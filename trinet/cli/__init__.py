"""Command-line entry points: parse, build from the registries, call the library."""
