"""Effect executors for processes: spawning, cgroups and whole-tree signalling."""
