"""`herder top`: a live terminal view of every instance, its logs, and keys to act.

Textual draws it (a maintained TUI library with a headless test pilot); it is imported
here only, so no other command pays for it. States move live from the event stream
(`GET /v1/events?follow=1&snapshot=1`); CPU and memory are fetched every `--interval`
seconds (`GET /v1/services`: herder samples them per request, never on its own timer, so an
idle herder costs nothing when nobody watches). The log pane follows the selected instance
(`GET /v1/logs/NAME?follow=1`). Actions ask first:

    s start   x stop   r restart   k signal (asks which, HUP by default)   q quit

Each action is the same API call as the CLI's (`wait: false`); its outcome shows in the
table as the events arrive.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Footer, Input, Label, RichLog, Static

from herder.cli.render import STATE_STYLE, human_bytes, human_cpu, human_duration
from herder.control.client import ApiError, Client, Response, lines_of
from herder.errors import HerderError

COLUMNS = ("NAME", "STATE", "PID", "UPTIME", "RESTARTS", "HEALTH", "CPU", "MEM", "EXIT")
HEALTH_COLOUR = {"healthy": "green", "unhealthy": "red", "unknown": "yellow"}
_COLOUR = {"green": "green", "red": "red", "yellow": "yellow", "dim": "grey50"}


class Confirm(ModalScreen[bool]):
    """Yes / no before anything is done to a service."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("y", "answer(True)", "yes"), Binding("n", "answer(False)", "no"),
                                             Binding("escape", "answer(False)", "cancel")]
    DEFAULT_CSS = """
    Confirm { align: center middle; }
    #dialog { width: 60; height: auto; padding: 1 2; border: thick $warning; background: $surface; }
    #buttons { grid-size: 2; grid-gutter: 1; height: 3; margin-top: 1; }
    """

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self.question, id="question")
            with Grid(id="buttons"):
                yield Button("Yes (y)", variant="warning", id="yes")
                yield Button("No (n)", id="no")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class AskSignal(ModalScreen[str | None]):
    """Which signal to send (Enter sends, Escape cancels)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "cancel")]
    DEFAULT_CSS = """
    AskSignal { align: center middle; }
    #dialog { width: 60; height: auto; padding: 1 2; border: thick $warning; background: $surface; }
    """

    def __init__(self, name: str) -> None:
        super().__init__()
        self.target = name

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(f"Send which signal to {self.target}? (Enter sends, Esc cancels)")
            yield Input(value="HUP", id="sig")

    @on(Input.Submitted)
    def submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class Top(App[int]):
    """The live view. `client` is a herder.control.client.Client (a real supervisor)."""

    TITLE = "herder top"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "act('start')", "start"), Binding("x", "act('stop')", "stop"),
        Binding("r", "act('restart')", "restart"), Binding("k", "signal", "signal"),
        Binding("q", "quit", "quit"),
    ]
    DEFAULT_CSS = """
    #summary { height: 1; padding: 0 1; background: $boost; }
    #instances { height: 1fr; }
    #logtitle { height: 1; padding: 0 1; background: $boost; }
    #logs { height: 1fr; border-top: solid $primary; }
    """

    def __init__(self, client: Client, interval: float = 2.0) -> None:
        super().__init__()
        self.client = client
        self.interval = interval
        self.rows: dict[str, dict[str, Any]] = {}
        self.selected: str | None = None
        self._log_resp: Response | None = None
        self._event_resp: Response | None = None
        self._log_gen = 0
        self._lock = threading.Lock()
        self.message = ""

    def compose(self) -> ComposeResult:
        yield Static("", id="summary")
        table: DataTable[Any] = DataTable(id="instances", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static("logs", id="logtitle")
        yield RichLog(id="logs", max_lines=2000, wrap=False, markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.refresh_usage()
        self.follow_events()
        self.set_interval(self.interval, self.refresh_usage)

    def on_unmount(self) -> None:
        for resp in (self._log_resp, self._event_resp):
            if resp is not None:
                resp.abort()

    # -- data -------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="usage")
    def refresh_usage(self) -> None:
        try:
            rows = self.client.call("services_list")
        except HerderError as e:
            self.call_from_thread(self.say, f"herder: {e}")
            return
        self.call_from_thread(self.show_rows, rows)

    @work(thread=True, group="events")
    def follow_events(self) -> None:
        try:
            resp = self.client.open_stream("events", query={"follow": True, "limit": 0})
        except HerderError as e:
            self.call_from_thread(self.say, f"herder: {e}")
            return
        self._event_resp = resp
        for ev in lines_of(resp):
            if ev.get("kind") in ("state", "spawn", "exit", "failed", "health"):
                self.call_from_thread(self.refresh_usage)
        self.call_from_thread(self.say, "the supervisor has exited (q quits)")

    def show_rows(self, rows: list[dict[str, Any]]) -> None:
        table = self.query_one("#instances", DataTable)
        if not table.columns:   # widths fixed once: the longest name, room for the widest values
            widths = (max((len(r["name"]) for r in rows), default=4) + 1, 9, 7, 7, 8, 9, 6, 7, 7)
            for col, width in zip(COLUMNS, widths, strict=True):
                table.add_column(col, key=col, width=max(width, len(col)))
        names = [r["name"] for r in rows]
        for gone in [n for n in self.rows if n not in names]:
            table.remove_row(gone)
        for r in rows:
            cells = _cells(r)
            if r["name"] in self.rows:
                for col, value in zip(COLUMNS, cells, strict=True):
                    table.update_cell(r["name"], col, value)
            else:
                table.add_row(*cells, key=r["name"])
        self.rows = {r["name"]: r for r in rows}
        counts: dict[str, int] = {}
        for r in rows:
            counts[r["state"]] = counts.get(r["state"], 0) + 1
        text = f"{len(rows)} instances: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
        self.query_one("#summary", Static).update(text + (f"   {self.message}" if self.message else ""))
        if self.selected is None and rows:
            self.select(rows[0]["name"])

    def say(self, message: str) -> None:
        self.message = message
        self.notify(message, timeout=4)

    # -- selection and the log pane ------------------------------------------------------

    @on(DataTable.RowHighlighted)
    def highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self.select(str(event.row_key.value))

    def select(self, name: str) -> None:
        if name == self.selected:
            return
        self.selected = name
        self.query_one("#logtitle", Static).update(f"logs: {name}  (s start · x stop · r restart · k signal)")
        self.query_one("#logs", RichLog).clear()
        old, self._log_resp = self._log_resp, None
        if old is not None:
            old.abort()
        self._log_gen += 1
        self.follow_logs(name, self._log_gen)

    @work(thread=True, group="logs")
    def follow_logs(self, name: str, gen: int) -> None:
        try:
            resp = self.client.open_stream("logs", path={"name": name}, query={"follow": True, "tail": 200})
        except HerderError as e:
            self.call_from_thread(self.log_line, gen, f"(no logs: {e})")
            return
        with self._lock:
            if gen != self._log_gen:
                resp.abort()
                return
            self._log_resp = resp
        for rec in lines_of(resp):
            if gen != self._log_gen:
                break
            self.call_from_thread(self.log_line, gen, f"{rec.get('ts', '')[11:23]} {rec.get('line', '')}")

    def log_line(self, gen: int, text: str) -> None:
        if gen == self._log_gen:
            self.query_one("#logs", RichLog).write(text)

    # -- actions ----------------------------------------------------------------------

    def current(self) -> str | None:
        """The instance under the cursor now (a key may come before the highlight event)."""
        table = self.query_one("#instances", DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return str(key) if key is not None else self.selected

    def action_act(self, verb: str) -> None:
        name = self.current()
        if name is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.call_api(f"service_{verb}", name, {"wait": False, "timeout": 300}, verb)

        self.push_screen(Confirm(f"{verb.capitalize()} {name}?"), answered)

    def action_signal(self) -> None:
        name = self.current()
        if name is None:
            return

        def chosen(sig: str | None) -> None:
            if sig:
                self.call_api("service_signal", name, {"signal": sig, "tree": False}, f"signal {sig.upper()}")

        self.push_screen(AskSignal(name), chosen)

    @work(thread=True, group="actions")
    def call_api(self, command: str, name: str, body: dict[str, Any], what: str) -> None:
        try:
            res = self.client.call(command, path={"name": name}, body=body)
        except (ApiError, HerderError) as e:
            self.call_from_thread(self.say, f"{what} {name}: {e}")
            return
        msg = res.get("message") or ("done" if res.get("ok") else "failed")
        self.call_from_thread(self.say, f"{what} {name}: {msg}")
        self.call_from_thread(self.refresh_usage)


def _cells(r: dict[str, Any]) -> tuple[Any, ...]:
    state = Text(r["state"], style=_COLOUR.get(STATE_STYLE.get(r["state"], ""), ""))
    health = Text(r.get("health") or "-", style=HEALTH_COLOUR.get(r.get("health") or "", ""))
    return (r["name"], state, str(r["pid"] or "-"), human_duration(r.get("uptime")), str(r["restarts"]), health,
            human_cpu(r.get("cpu")), human_bytes(r.get("rss")), "-" if r.get("exit") is None else str(r["exit"]))


def run_top(args: Any) -> int:
    from herder.control.client import discover_socket

    client = Client(discover_socket(args.socket, args.config), timeout=30)
    client.call("health")   # not running: the usual message and exit 3, before the screen is taken
    Top(client, interval=max(0.5, args.interval)).run()
    return 0
