"""Server time of the QA API with many stored inspections (issue 5): queue page, stats, filtered pages.

    python bench/bench_api.py [--n 100000] [--reps 30] [--db PATH]

Fills a fresh SQLite database (migrated to head, WAL) with ``n`` synthetic inspections in
bulk (SQL Core executemany; one shared real evidence crop): 3 lines, 4 cameras, spread
over 7 days; 85 % pass (no boxes), 10 % fail (1-4 boxes, confidence 0.5-1), 5 % uncertain
(1-2 boxes, 0.25-0.5); a fifth of the flagged ones already reviewed. Then it times each
request in process (FastAPI app, TestClient) and prints the median and p95 of the time
spent inside the app (a middleware around the route: routing, auth, SQL, JSON) and of the
round trip through the test client.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fastapi import Request, Response  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import Engine, insert  # noqa: E402

from api.app import create_app  # noqa: E402
from api.services import Services  # noqa: E402
from api.tokens import Role, TokenStore  # noqa: E402
from inspection.core.classes import DEEPPCB_CLASSES  # noqa: E402
from inspection.store import EvidenceStore, InspectionStore, encode_jpeg, open_database  # noqa: E402
from inspection.store.models import RISK_RANK, BoxRow, InspectionRow  # noqa: E402

LINES = ("line-1", "line-2", "line-3")
CAMERAS = ("cam1", "cam2", "cam3", "cam4")
END = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SPAN_S = 7 * 86400
CHUNK = 10_000


def _inspection(i: int, n: int, rng: np.random.Generator, sha: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    r = rng.random()
    outcome = "pass" if r < 0.85 else "fail" if r < 0.95 else "uncertain"
    n_boxes = 0 if outcome == "pass" else int(rng.integers(1, 5 if outcome == "fail" else 3))
    lo, hi = (0.5, 1.0) if outcome == "fail" else (0.25, 0.5)
    conf = rng.uniform(lo, hi, n_boxes)
    ident = str(uuid.UUID(int=i + 1))
    created = END - timedelta(seconds=SPAN_S * (1 - i / n))
    reviewed = outcome != "pass" and rng.random() < 0.2
    row = {
        "id": ident,
        "part_id": f"bench-{i}",
        "line_id": LINES[i % 3],
        "camera_id": CAMERAS[i % 4],
        "track_id": i,
        "outcome": outcome,
        "reasons": [],
        "model_name": "defect-yolov8n",
        "model_version": "1",
        "frame_seq": i,
        "captured_at": created,
        "created_at": created,
        "evidence_sha256": sha,
        "board_x1": 0.0,
        "board_y1": 0.0,
        "board_x2": 560.0,
        "board_y2": 480.0,
        "crop_width": 560,
        "crop_height": 480,
        "review_status": "confirmed" if reviewed else "pending",
        "reviewed_by": "qa" if reviewed else None,
        "reviewed_at": created if reviewed else None,
        "version": 2 if reviewed else 1,
        "max_confidence": float(conf.max()) if n_boxes else 0.0,
        "risk_rank": RISK_RANK[outcome],
    }
    boxes = []
    for k in range(n_boxes):
        x, y = rng.uniform(0, 500, 2)
        boxes.append(
            {
                "inspection_id": ident,
                "x1": float(x),
                "y1": float(y),
                "x2": float(x) + 30,
                "y2": float(y) + 25,
                "confidence": float(conf[k]),
                "class_name": DEEPPCB_CLASSES[int(rng.integers(0, 6))],
                "source": "model",
                "rejected": False,
            }
        )
    return row, boxes


def fill(db: Engine, n: int, sha: str) -> float:
    """Insert ``n`` inspections with their boxes; returns seconds."""
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    ins, box = InspectionRow.__table__, BoxRow.__table__
    for start in range(0, n, CHUNK):
        rows, boxes = [], []
        for i in range(start, min(n, start + CHUNK)):
            row, bx = _inspection(i, n, rng, sha)
            rows.append(row)
            boxes += bx
        with db.begin() as conn:
            conn.execute(insert(ins), rows)
            if boxes:
                conn.execute(insert(box), boxes)
    return time.perf_counter() - t0


def board_crop() -> bytes:
    """A real DeepPCB crop when the shared data is there, else a drawn board."""
    import cv2

    from tests.conftest import REPO as TESTS_REPO
    from tests.conftest import draw_board

    src = TESTS_REPO.parent / "shared" / "datasets" / "deeppcb-trainval" / "PCBData"
    first = (src / "trainval.txt").read_text().split()[0] if (src / "trainval.txt").is_file() else None
    if first:
        image = cv2.imread(str(src / first.replace(".jpg", "_test.jpg")), cv2.IMREAD_COLOR)
        if image is not None:
            return encode_jpeg(np.ascontiguousarray(image[60:540, 40:600]))
    return encode_jpeg(cv2.cvtColor(draw_board(np.random.default_rng(0))[:480, :560], cv2.COLOR_GRAY2BGR))


def timed(
    client: TestClient, server_ms: list[float], url: str, params: dict[str, Any], reps: int
) -> tuple[list[float], list[float], Any]:
    client_ms: list[float] = []
    body = None
    for i in range(reps + 3):
        t0 = time.perf_counter()
        r = client.get(url, params=params)
        elapsed = (time.perf_counter() - t0) * 1000
        assert r.status_code == 200, r.text
        body = r.json()
        if i >= 3:  # warm-up calls are not counted
            client_ms.append(elapsed)
    return server_ms[-reps:], client_ms, body


def report(name: str, server: list[float], client: list[float], note: str) -> None:
    def p95(v: list[float]) -> float:
        return sorted(v)[max(0, int(round(0.95 * len(v))) - 1)]

    print(
        f"{name:38s} server median {statistics.median(server):7.1f} ms  p95 {p95(server):7.1f} ms   "
        f"round trip median {statistics.median(client):7.1f} ms  p95 {p95(client):7.1f} ms   {note}",
        flush=True,
    )


def run(n: int, reps: int, folder: Path) -> None:
    db = open_database(f"sqlite:///{folder / 'bench.db'}")
    evidence = EvidenceStore(folder / "evidence")
    sha = evidence.put(board_crop())
    print(f"filled {n} inspections in {fill(db, n, sha):.1f} s", flush=True)
    tokens = TokenStore(db)
    _, admin = tokens.create(Role.QA, "bench")
    app = create_app(
        Services(engine=None, tokens=tokens, inspections=InspectionStore(db, evidence), class_names=DEEPPCB_CLASSES)
    )
    server_ms: list[float] = []

    @app.middleware("http")
    async def clock(request: Request, call_next: Callable[[Request], Any]) -> Response:
        t0 = time.perf_counter()
        response: Response = await call_next(request)
        server_ms.append((time.perf_counter() - t0) * 1000)
        return response

    since = (END - timedelta(days=1)).isoformat()
    cases = [
        ("queue: first page, sort=risk", "/api/v1/inspections", {"sort": "risk", "limit": 50}),
        ("queue: pending, sort=risk", "/api/v1/inspections", {"sort": "risk", "review_status": "pending"}),
        ("stats: everything, bucket=hour", "/api/v1/stats", {"bucket": "hour"}),
        ("stats: one line, last day, minute", "/api/v1/stats", {"line": "line-2", "from": since, "bucket": "minute"}),
        (
            "filtered: line+verdict+from, newest",
            "/api/v1/inspections",
            {"line": "line-2", "verdict": "fail", "from": since, "limit": 50},
        ),
        ("filtered: defect_class=spur, newest", "/api/v1/inspections", {"defect_class": "spur", "limit": 50}),
    ]
    with TestClient(app, headers={"Authorization": f"Bearer {admin}"}) as client:
        first = client.get("/api/v1/inspections", params={"sort": "risk", "limit": 50}).json()
        deep = client.get("/api/v1/inspections", params={"sort": "risk", "limit": 50, "cursor": first["next_cursor"]})
        assert deep.status_code == 200
        for name, url, params in cases:
            server, rtt, body = timed(client, server_ms, url, params, reps)
            note = f"{len(body['items'])} items" if "items" in body else f"{body['inspected']} inspected"
            report(name, server, rtt, note)
    db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="Inspections to store.")
    parser.add_argument("--reps", type=int, default=30, help="Timed calls per request.")
    parser.add_argument("--db", type=Path, default=None, help="Folder for the database (default: a temporary one).")
    args = parser.parse_args()
    if args.db is not None:
        args.db.mkdir(parents=True, exist_ok=True)
        run(args.n, args.reps, args.db)
        return
    with tempfile.TemporaryDirectory(prefix="twinspect-bench-api-") as tmp:
        run(args.n, args.reps, Path(tmp))


if __name__ == "__main__":
    main()
