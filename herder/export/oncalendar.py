"""A cron expression as systemd's OnCalendar= (the timers of `herder export systemd`) and as
the five plain fields a Kubernetes CronJob takes.

The expression is read by the same parser herder runs it with (cronsim), and each field's
set of values is written out as an explicit list, which OnCalendar= reads the same way
whatever the original spelling (`*/15`, `9-17`, `mon-fri`, `@daily`). What OnCalendar=
cannot say is refused with the reason (the export reports the key as not carried): cron's
"either day-of-month or day-of-week" when both are restricted (OnCalendar= wants both), and
cronsim's `L`, `W` and `#` day forms. tests/export checks the next runs against
`systemd-analyze calendar` for a set of expressions. Kubernetes' parser reads the five
standard fields (both day fields restricted: either matches, as in herder), without seconds.
"""

from __future__ import annotations

from datetime import UTC, datetime

from herder.config.lifecycle import cron_fields

_DAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")
_FULL = {"seconds": set(range(60)), "minutes": set(range(60)), "hours": set(range(24)), "days": set(range(1, 32)),
         "months": set(range(1, 13))}


class Untranslatable(ValueError):
    """The expression has no OnCalendar= equivalent (the message says why)."""


def _field(values: object, name: str, width: int = 2) -> str:
    if not isinstance(values, set) or not all(isinstance(v, int) and v >= 0 for v in values):
        raise Untranslatable(f"the {name} field uses a form OnCalendar= has no equivalent for (L, W or #)")
    if values == _FULL[name]:
        return "*"
    return ",".join(f"{v:0{width}d}" for v in sorted(values))


def _parsed(expr: str) -> dict[str, object]:
    """The field sets cronsim made of `expr` (its attributes: seconds, minutes … weekdays, day_and)."""
    from cronsim import CronSim, CronSimError  # only an export with schedules loads it

    try:
        return vars(CronSim(cron_fields(expr), datetime(2000, 1, 1, tzinfo=UTC)))
    except (CronSimError, ValueError) as e:
        raise Untranslatable(str(e)) from None


def _weekdays(parts: dict[str, object]) -> set[int]:
    weekdays = parts.get("weekdays")
    if not isinstance(weekdays, set) or not all(isinstance(v, int) for v in weekdays):
        raise Untranslatable("the day-of-week field uses a form that has no equivalent there (L or #)")
    return {d % 7 for d in weekdays}


def on_calendar(expr: str, zone: str | None = None) -> str:
    """OnCalendar= text for `expr` in `zone` (None: the host's local time, as herder's default)."""
    parts = _parsed(expr)
    if not parts.get("day_and", True):
        raise Untranslatable("both day-of-month and day-of-week are restricted: cron runs on either, "
                             "OnCalendar= only on days that match both")
    days = _weekdays(parts)
    dow = "" if days == set(range(7)) else ",".join(_DAYS[d] for d in sorted(days)) + " "
    date = f"*-{_field(parts.get('months'), 'months')}-{_field(parts.get('days'), 'days')}"
    time = ":".join(_field(parts.get(k), k) for k in ("hours", "minutes", "seconds"))
    return f"{dow}{date} {time}" + (f" {zone}" if zone else "")


def five_fields(expr: str) -> str:
    """`expr` as the five standard cron fields with explicit lists (a Kubernetes CronJob)."""
    parts = _parsed(expr)
    if parts.get("seconds") != {0}:
        raise Untranslatable("a seconds field: Kubernetes reads minutes first")
    either = not parts.get("day_and", True)     # both day fields restricted: keep them lists
    days = _weekdays(parts)
    dow = "*" if days == set(range(7)) and not either else ",".join(str(d) for d in sorted(days))
    dom = _field(parts.get("days"), "days", 1)
    if either and dom == "*":
        dom = ",".join(str(d) for d in range(1, 32))
    return " ".join([_field(parts.get("minutes"), "minutes", 1), _field(parts.get("hours"), "hours", 1), dom,
                     _field(parts.get("months"), "months", 1), dow])
