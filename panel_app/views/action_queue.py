"""The exception queue on the At-risk page: acknowledge, assign, note and resolve an order.

A click becomes an event on the ``actions`` Kafka topic (:mod:`scpro_assets.actions`); the order's
status and owner come back through landing, dbt and the next snapshot, like every other figure
on the dashboard. Until then the action shows in the order's trail as "sent". Before sending, the
newest snapshot is asked whether the order is listed and not yet resolved, so a page left open
since before a resolution cannot act on it. Nothing typed is lost: a refused or unsent action
leaves the text where it was, with the reason. Every text shown is escaped.
"""

from __future__ import annotations

import html

import pandas as pd
import panel as pn

from panel_app.queue_store import audit_trail, order_in_queue
from panel_app.store import DataStore
from scpro_assets.actions import (
    ACTION_LABELS,
    ActionNotSent,
    ActionRefused,
    SentAction,
    new_action,
    publish_action,
)
from scpro_assets.contracts.events import MAX_NOTE_CHARS
from scpro_assets.settings import DashboardSettings, KafkaSettings

#: Who acts when login is off (``SCPRO_PANEL_ACTOR``); with login on, the logged-in user does.
DEFAULT_ACTOR = "dashboard user"

TRAIL_CSS = """
.trail { width: 100%; border-collapse: collapse; font-family: system-ui, sans-serif;
         font-size: 13px; }
.trail th { text-align: left; color: #475569; border-bottom: 1px solid #cbd5e1; padding: 4px; }
.trail td { border-bottom: 1px solid #eef2f7; padding: 4px; vertical-align: top;
            white-space: pre-wrap; word-break: break-word; }
.trail tr.pending td { color: #64748b; font-style: italic; }
.trail tr.late td { color: #94a3b8; }
.queue-msg { font-family: system-ui, sans-serif; font-size: 14px; padding: 6px 10px;
             border-radius: 6px; }
.queue-msg.ok { background: #e0f2fe; color: #075985; }
.queue-msg.error { background: #fdebd3; color: #8a3b00; }
"""


def current_actor() -> str:
    """The logged-in user when login is on, else ``SCPRO_PANEL_ACTOR`` (or a default name)."""
    user = pn.state.user
    if user:
        return str(user)
    return DashboardSettings().actor.strip() or DEFAULT_ACTOR


def _cell(value: object) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if isinstance(value, pd.Timestamp):
        return html.escape(f"{value:%Y-%m-%d %H:%M:%S} UTC")
    return html.escape(str(value))


def trail_html(order_id: str, trail: pd.DataFrame, pending: list[SentAction]) -> str:
    """The order's actions as an HTML table, every value escaped; unsnapshotted ones last."""
    if not order_id:
        return '<div class="trail-empty">Choose an order to see its trail.</div>'
    rows = []
    for record in trail.to_dict("records"):
        late = bool(record.get("is_after_resolution"))
        what = ACTION_LABELS.get(str(record["action"]), str(record["action"]))
        rows.append(
            f'<tr class="{"late" if late else "done"}"><td>{_cell(record["acted_at"])}</td>'
            f"<td>{_cell(what + (' (after resolution, ignored)' if late else ''))}</td>"
            f"<td>{_cell(record['actor'])}</td><td>{_cell(record['assignee'])}</td>"
            f"<td>{_cell(record['note'])}</td></tr>"
        )
    seen = set(trail["action_id"]) if "action_id" in trail else set()
    for sent in pending:
        event = sent.event
        if event.order_id != order_id or event.event_id in seen:
            continue
        rows.append(
            f'<tr class="pending"><td>{_cell(pd.Timestamp(event.event_time).tz_convert(None))}'
            f"</td><td>{_cell(ACTION_LABELS[event.action] + ' (sent, not in a snapshot yet)')}"
            f"</td><td>{_cell(event.actor)}</td><td>{_cell(event.assignee)}</td>"
            f"<td>{_cell(event.note)}</td></tr>"
        )
    if not rows:
        return (
            f'<div class="trail-empty">Nobody has acted on order {html.escape(order_id)} yet.</div>'
        )
    return (
        f'<div class="trail-title">Trail of order {html.escape(order_id)}</div>'
        '<table class="trail"><tr><th>When</th><th>Action</th><th>By</th><th>Assigned to</th>'
        f"<th>Note</th></tr>{''.join(rows)}</table>"
    )


class ExceptionQueue(pn.viewable.Viewer):
    """One session's form to act on an at-risk order, its messages and the order's trail."""

    def __init__(self, store: DataStore, kafka: KafkaSettings | None = None, **params: object):
        super().__init__(**params)
        self._store = store
        self._kafka = kafka
        #: Actions this session sent, shown as "sent" until a snapshot holds them.
        self._pending: list[SentAction] = []
        self.order = pn.widgets.TextInput(
            name="Order", placeholder="click a row, or type an order id", css_classes=["q-order"]
        )
        self.assignee = pn.widgets.TextInput(
            name="Assign to (team or person)", css_classes=["q-assignee"]
        )
        self.note = pn.widgets.TextAreaInput(
            name=f"Note (up to {MAX_NOTE_CHARS:,} characters)",
            height=90,
            css_classes=["q-note"],
        )
        self.buttons = [
            pn.widgets.Button(name=label, button_type=kind, css_classes=[f"q-do-{action}"])
            for action, label, kind in (
                ("acknowledge", "Acknowledge", "primary"),
                ("assign", "Assign", "primary"),
                ("note", "Add note", "default"),
                ("resolve", "Resolve", "primary"),
            )
        ]
        for button, action in zip(self.buttons, ACTION_LABELS, strict=True):
            button.on_click(lambda _event, action=action: self.act(action))
        self.message = pn.pane.HTML(
            "", stylesheets=[TRAIL_CSS], sizing_mode="stretch_width", css_classes=["q-message"]
        )
        self.trail = pn.pane.HTML(
            trail_html("", pd.DataFrame(), []),
            stylesheets=[TRAIL_CSS],
            sizing_mode="stretch_width",
            css_classes=["q-trail"],
        )
        self.order.param.watch(lambda _event: self.show_trail(), "value")

    def kafka(self) -> KafkaSettings:
        """Where actions go: the settings given, else the environment's (read when first used)."""
        if self._kafka is None:
            self._kafka = KafkaSettings.from_env()
        return self._kafka

    def order_id(self) -> str:
        """The order typed or chosen (what is in the box now, even before Enter)."""
        return (self.order.value_input or self.order.value or "").strip()

    def choose(self, order_id: str) -> None:
        """Make ``order_id`` the order acted on (a click on the list's row)."""
        self.order.param.update(value=order_id, value_input=order_id)

    def say(self, text: str, ok: bool) -> None:
        """Show a message, escaped."""
        self.message.object = (
            f'<div class="queue-msg {"ok" if ok else "error"}">{html.escape(text)}</div>'
        )

    def show_trail(self) -> None:
        """Show the chosen order's trail from the newest snapshot, plus this session's sends."""
        order_id = self.order_id()
        trail = audit_trail(self._store, order_id) if order_id else pd.DataFrame()
        self.trail.object = trail_html(order_id, trail, self._pending)

    def check(self, order_id: str) -> None:
        """Refuse an order the newest snapshot does not list, or that is already resolved."""
        # A session's store reads one version until the page follows the next (panel_app.app);
        # the check asks the version ``current`` names now, so a page that has not caught up
        # yet cannot act on an order a newer snapshot says is resolved or gone.
        newest = DataStore(serving_current=self._store.serving_current, state=self._store.state)
        version = newest.snapshot().version
        row = order_in_queue(newest, order_id)
        if row is None:
            raise ActionRefused(
                f"Order {order_id} is not in the at-risk list of the newest snapshot "
                f"({version}): check the id (a delivered or canceled order leaves the list). "
                "Nothing was sent."
            )
        resolved_here = any(
            s.event.order_id == order_id and s.event.action == "resolve" for s in self._pending
        )
        if resolved_here or row.get("queue_status") == "resolved":
            raise ActionRefused(
                f"Order {order_id} is already resolved (newest snapshot {version}): this page "
                "was out of date, and a resolved order takes no more actions. Nothing was sent."
            )

    def act(self, action: str) -> None:
        """Validate, send to Kafka, and say what happened; keep the text unless it was sent."""
        order_id = self.order_id()
        try:
            if order_id:
                self.check(order_id)
            event = new_action(
                order_id,
                action,
                actor=current_actor(),
                assignee=self.assignee.value_input or self.assignee.value,
                note=self.note.value_input or self.note.value,
                snapshot_version=self._store.snapshot().version,
            )
            sent = publish_action(self.kafka(), event)
        except (ActionRefused, ActionNotSent) as error:
            self.say(str(error), ok=False)
            return
        self._pending.append(sent)
        if event.note:
            self.note.param.update(value="", value_input="")
        who = f" to {event.assignee}" if event.assignee else ""
        self.say(
            f"{ACTION_LABELS[action]}{who}: order {order_id}, sent to Kafka (partition "
            f"{sent.partition}, offset {sent.offset}) as {event.actor}. The list shows it after "
            "the next snapshot.",
            ok=True,
        )
        self.show_trail()

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Card(
            pn.Row(self.order, self.assignee, sizing_mode="stretch_width"),
            self.note,
            pn.Row(*self.buttons),
            self.message,
            self.trail,
            title="Act on an order (exception queue)",
            collapsible=False,
            sizing_mode="stretch_width",
            css_classes=["exception-queue"],
        )
