"""Alerts and on_event hooks: telling people and programs what the supervisor saw.

`policy` (pure: which events raise or clear which condition, de-duplication, rate
limit, "resolved"), `targets` (apprise URLs, imported lazily, and exec: commands),
`deliver` (bounded queues, one worker per target, retries with backoff on the injected
clock), `component` (the supervisor component that subscribes to the event bus).
"""
