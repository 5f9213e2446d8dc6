"""Where an instance's output goes: the one resolver of log file paths.

`auto` is {log_dir}/{instance}.log (stderr: .err.log); a path is relative to the config
file's directory, `{replica}` is substituted, and replicas never share a file (without
`{replica}` in the path, `.N` is inserted before the suffix: out.log -> out.1.log).
Used by the capture (herder.logs.LogHub), by `herder logs` reading files without a
supervisor (herder.logs._read), and nowhere else.
"""

from __future__ import annotations

from pathlib import Path

STREAM_SUFFIX = {"stdout": ".log", "stderr": ".err.log"}


def output_path(mode: str, instance: str, replica: int | None, stream: str, *, log_dir: Path,
                config_dir: Path) -> Path | None:
    """The file `mode` (a logs.stdout / logs.stderr value) names for this instance, or None
    when it names no file of its own (inherit, null, merge)."""
    if mode in ("inherit", "null", "merge"):
        return None
    if mode == "auto":
        return log_dir / f"{instance}{STREAM_SUFFIX[stream]}"
    path = Path(mode.replace("{replica}", str(replica if replica is not None else 0)))
    if not path.is_absolute():
        path = config_dir / path
    if replica is not None and "{replica}" not in mode:
        path = path.with_name(f"{path.stem}.{replica}{path.suffix}")
    return path
