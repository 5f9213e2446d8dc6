"""The pure decision core: no os, no asyncio, no time imports.

Everything here takes the current monotonic time as an argument and returns effects for
the runtime to carry out, so backoff, start limits, dependency gating and ordered
shutdown are tested without processes, on a fake clock.
"""
