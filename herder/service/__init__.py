"""herder.service: make a Python program a well-behaved service under any manager.

    from herder.service import Service

    svc = Service("billing-sync")

    @svc.main
    async def main(ctx):
        ...
        ctx.ready()
        await ctx.stopping

    if __name__ == "__main__":
        svc.run()

The console, herder, systemd, launchd and the Windows SCM are detected; see
docs/service.md. Importing this package stays light: no pywin32, no python-daemon,
no asyncio loop until ``run()``.
"""

from herder.service._context import Context, Stopping
from herder.service._errors import AlreadyRunning, ServiceError
from herder.service._modes import Mode
from herder.service._service import Service

__all__ = ["AlreadyRunning", "Context", "Mode", "Service", "ServiceError", "Stopping"]
