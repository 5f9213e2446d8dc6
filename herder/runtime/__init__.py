"""THE loop: owns all state, turns inputs into events, carries out the core's effects."""
