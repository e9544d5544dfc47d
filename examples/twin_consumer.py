"""A twin engine's view of twinspect: keep a local twin of one line in sync from the SSE feed.

    export TWINSPECT_TOKEN=tsp_...    # a token with the twin role (or pass --token)
    python examples/twin_consumer.py --url http://127.0.0.1:8000 --line line-1 --state line-1.json
    python examples/twin_consumer.py --url http://127.0.0.1:8000 --line line-1 --state line-1.json --verify
    kill -USR1 <pid>                  # verify now, while it runs

How it stays right:
- it starts from its saved state (or an empty twin at offset 0) and asks the SSE feed
  (``/api/v1/events/stream?line=LINE``) for everything after the last offset it applied,
  sent as ``Last-Event-ID``;
- it folds each event with ``sync.twin.apply``, the server's own projection, so both sides
  render the same document, byte for byte;
- an event whose sequence it already applied is skipped (no duplicates); a sequence jump is
  a gap: it re-reads the pull API (``GET /api/v1/events?after=``) from its offset, and stops
  with exit code 3 when the log itself has the gap;
- it saves ``{"line", "offset", "state"}`` atomically every ``--save-every`` events and on exit;
- after a disconnect (a server restart) it reconnects with backoff and resumes;
- every ``--verify-every`` seconds, on SIGUSR1 and when it stops, it compares its document with
  ``GET /api/v1/twin/LINE?at=<its revision>`` and prints ``revision N, in sync`` or ``MISMATCH ...``.

Exit codes: 0 in sync, 1 mismatch (or a state file of another line), 2 the server refused the offset,
line or token, 3 gap in the log.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from sync.events import dumps
from sync.twin import apply, document, new_state


class Stop(Exception):
    """End the run with an exit code (``None``: verify first; the code is the verdict)."""

    def __init__(self, code: int | None, message: str = "") -> None:
        super().__init__(message)
        self.code = code


class Retry(Exception):
    """Not now: the server knows no event of the line yet, or it failed (5xx); try again later."""


def load_state(path: Path | None, line: str) -> dict[str, Any]:
    """The saved state of ``line`` in ``path``, or an empty twin at offset 0."""
    if path is None or not path.exists():
        return new_state(line)
    saved = json.loads(path.read_text())
    if saved["line"] != line:
        sys.exit(f"{path} holds the twin of {saved['line']!r}, not {line!r}")
    return saved["state"]  # type: ignore[no-any-return]


def save_state(path: Path | None, state: dict[str, Any]) -> None:
    """Write the state atomically: a temporary file, fsync, then rename over the old one."""
    if path is None:
        return
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(dumps({"line": state["line_id"], "offset": state["offset"], "state": state}))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class TwinConsumer:
    """One line's local twin, fed by the SSE feed; see the module docstring."""

    def __init__(self, client: httpx.Client, args: argparse.Namespace) -> None:
        self.client, self.args = client, args
        self.state_path = Path(args.state) if args.state else None
        self.state = load_state(self.state_path, args.line)
        self.applied = self.unsaved = self.skipped = 0
        self.next_verify = time.monotonic() + args.verify_every
        self.verify_requested = False
        self.backoff = 0.2

    def handle(self, ce: dict[str, Any], offset: int) -> None:
        """Apply one event from the feed: skip what is known, fill a gap from the pull API."""
        sequence, revision = int(ce["sequence"]), int(self.state["revision"])
        if sequence <= revision:
            self.skipped += 1
        elif sequence == revision + 1:
            self._apply(ce, offset)
        else:
            print(f"gap: sequence {revision} then {sequence} (offset {offset}); re-reading the log", file=sys.stderr)
            self.refetch(upto=offset)

    def _apply(self, ce: dict[str, Any], offset: int) -> None:
        ce.pop("offset", None)  # the feed's extension; the stored event has none
        apply(self.state, ce, offset)
        self.applied += 1
        self.unsaved += 1
        if self.unsaved >= self.args.save_every:
            self.save()
        if (self.args.max_events is not None and self.applied >= self.args.max_events) or (
            self.args.until_revision is not None and self.state["revision"] >= self.args.until_revision
        ):
            raise Stop(None)

    def refetch(self, upto: int) -> None:
        """Read the line's events after our offset up to ``upto`` with the pull API; stop if the log skips."""
        after = int(self.state["offset"])
        while after < upto:
            r = self.client.get(
                self.args.url + "/api/v1/events", params={"after": after, "line": self.args.line, "limit": 1000}
            )
            self.check(r)
            page = r.json()
            for ce in page["events"]:
                sequence, revision = int(ce["sequence"]), int(self.state["revision"])
                if sequence > revision + 1:
                    raise Stop(
                        3,
                        f"gap in the log of line {self.args.line}: sequence {revision} is followed by "
                        f"{sequence} at offset {ce['offset']}; refusing to go on (rebuild this twin)",
                    )
                if sequence == revision + 1:
                    self._apply(ce, int(ce["offset"]))
            if page["next_after"] <= after:
                break
            after = page["next_after"]

    def save(self) -> None:
        save_state(self.state_path, self.state)
        self.unsaved = 0

    def check(self, r: httpx.Response) -> None:
        if r.status_code == 200:
            return
        try:
            body = r.json()
        except ValueError:
            body = {}
        detail = body.get("detail", r.text[:200]) if isinstance(body, dict) else r.text[:200]
        if r.status_code >= 500 or (
            r.status_code == 404 and isinstance(body, dict) and body.get("error") == "UnknownLine"
        ):
            raise Retry(f"HTTP {r.status_code}: {detail}")
        raise Stop(2, f"server refused: HTTP {r.status_code}: {detail}")

    def verify(self) -> bool | None:
        """Compare our document with the server's at our revision; print one status line (None: could not)."""
        revision = self.state["revision"]
        try:
            r = self.client.get(f"{self.args.url}/api/v1/twin/{self.args.line}", params={"at": revision})
        except httpx.TransportError as error:
            print(f"revision {revision}, NOT VERIFIED: {type(error).__name__}: {error}", flush=True)
            return None
        if r.status_code != 200:
            print(f"revision {revision}, NOT VERIFIED: HTTP {r.status_code}: {r.text[:200]}", flush=True)
            return None
        mine = dumps(document(self.state)).encode("utf-8")
        if r.content == mine:
            print(f"revision {revision}, in sync", flush=True)
            return True
        at = next((i for i, (a, b) in enumerate(zip(mine, r.content, strict=False)) if a != b), len(mine))
        print(
            f"revision {revision}, MISMATCH at byte {at}: local {mine[at : at + 60]!r} server "
            f"{r.content[at : at + 60]!r}",
            flush=True,
        )
        return False

    def maybe_verify(self) -> None:
        if self.verify_requested or time.monotonic() >= self.next_verify:
            self.verify_requested = False
            self.next_verify = time.monotonic() + self.args.verify_every
            if self.verify() is False:
                raise Stop(1, "the local twin differs from the server's; stopping")

    def stream(self) -> None:
        """One SSE connection, from our offset, until the server closes it."""
        headers = {"Accept": "text/event-stream", "Last-Event-ID": str(self.state["offset"])}
        url = f"{self.args.url}/api/v1/events/stream"
        with self.client.stream("GET", url, params={"line": self.args.line}, headers=headers) as r:
            if r.status_code != 200:
                r.read()
                self.check(r)
            print(f"connected; resuming after offset {self.state['offset']}", file=sys.stderr, flush=True)
            self.backoff = 0.2
            event_id, data = None, None
            for text in r.iter_lines():
                if text.startswith("id:"):
                    event_id = int(text[3:].strip())
                elif text.startswith("data:"):
                    data = text[5:].removeprefix(" ")
                elif not text and data is not None:
                    ce = json.loads(data)
                    self.handle(ce, event_id if event_id is not None else int(ce["offset"]))
                    event_id, data = None, None
                self.maybe_verify()

    def run(self) -> int:
        try:
            while True:
                try:
                    self.stream()
                    reason = "the server closed the stream"
                except httpx.TransportError as error:
                    reason = f"{type(error).__name__}: {error}"
                except Retry as error:
                    reason = str(error)
                self.save()
                print(f"disconnected ({reason}); retrying in {self.backoff:.1f} s", file=sys.stderr, flush=True)
                time.sleep(self.backoff)
                self.backoff = min(self.backoff * 2, self.args.max_backoff)
        except Stop as stop:
            self.save()
            if stop.code is not None:
                print(f"stopped: {stop}", file=sys.stderr, flush=True)
                return stop.code
            return 0 if self.verify() is True else 1
        except KeyboardInterrupt:
            self.save()
            print(f"interrupted at revision {self.state['revision']}; state saved", file=sys.stderr, flush=True)
            return 0
        finally:
            print(f"applied {self.applied}, skipped {self.skipped} duplicates", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Keep a local twin of a line in sync from twinspect's SSE feed.")
    p.add_argument("--url", default="http://127.0.0.1:8000", help="Base URL of the twinspect API.")
    p.add_argument("--line", required=True, help="Line id, e.g. line-1.")
    p.add_argument("--state", default=None, help="State file (loaded at start, saved atomically).")
    p.add_argument("--save-every", type=int, default=500, help="Save the state every N applied events.")
    p.add_argument("--verify-every", type=float, default=30.0, help="Verify against the server every S seconds.")
    p.add_argument("--verify", action="store_true", help="Verify the saved state once and exit.")
    p.add_argument("--max-events", type=int, default=None, help="Stop after applying N events.")
    p.add_argument("--until-revision", type=int, default=None, help="Stop once the twin reaches revision R.")
    p.add_argument("--max-backoff", type=float, default=5.0, help="Longest wait between reconnects, seconds.")
    p.add_argument("--read-timeout", type=float, default=60.0, help="Give up on a silent stream after S seconds.")
    p.add_argument("--token", default=os.environ.get("TWINSPECT_TOKEN"), help="Bearer token (twin role).")
    args = p.parse_args(argv)
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    with httpx.Client(headers=headers, timeout=httpx.Timeout(10.0, read=args.read_timeout)) as client:
        consumer = TwinConsumer(client, args)
        if args.verify:
            return 0 if consumer.verify() is True else 1
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        signal.signal(signal.SIGUSR1, lambda *_: setattr(consumer, "verify_requested", True))
        return consumer.run()


if __name__ == "__main__":
    sys.exit(main())
