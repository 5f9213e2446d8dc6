"""Native service managers: systemd, launchd and the Windows SCM.

Each manager module has a pure ``render(spec, …) -> files/commands`` and builds a
:class:`~herder.platform.plan.Plan` (files to write, commands to run) that
:mod:`herder.platform.plan` either prints (``--dry-run``) or carries out. The input is
an :class:`~herder.platform.spec.InstallSpec`: the supervisor's own
:class:`~herder.config.model.ServiceSpec` plus what only an installer needs (scope,
start type, account, hardening). pywin32 is imported only by ``_win32.py``, lazily.
"""
