"""Real engines (Docker, Compose, Swarm) for the tests: a package, so the dockerd fixture ends with it."""
