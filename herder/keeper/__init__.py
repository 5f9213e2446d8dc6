"""The keeper: the process that outlives herder's decision process (docs/supervisor.md).

Its import path is kept small on purpose (no asyncio, no config schema, no third-party
package): `python -X importtime -m herder.keeper` shows what it costs.
"""
