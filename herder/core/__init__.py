"""The pure decision core: no os, no asyncio, no time imports.

One function decides everything herder does: `herder.core.step.step(world, event, now)`
takes the World (herder.core.world), one typed event (herder.core.events) and the
current monotonic time, updates the World and returns typed effects
(herder.core.effects) for the runtime to carry out. Because it never performs I/O and
never reads a clock, backoff, start limits, health thresholds, dependency gating, ordered
stops, reloads and shutdown are tested without processes (herder.testing.Sim).
"""
