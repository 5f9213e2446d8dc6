"""Durable state in state_dir: who is running, what operators asked for, the journal."""
