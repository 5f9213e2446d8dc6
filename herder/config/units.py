"""Re-export of herder.units (durations, sizes, signals) for the config layer's imports."""

from herder.units import format_duration, parse_duration, parse_signal, parse_size

__all__ = ["format_duration", "parse_duration", "parse_signal", "parse_size"]
