"""Shared fixtures: a DeepPCB-layout factory, frame and detection factories, a socket guard."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from inspection.core.detections import Detections
from tests.slow_marks import pytest_collection_modifyitems  # noqa: F401 (the slow end-to-end checks, by name)

REPO = Path(__file__).resolve().parents[1]


def pytest_collection_finish(session: pytest.Session) -> None:
    from tests import code_checks

    code_checks.start_if_selected([item.nodeid for item in session.items])  # mypy beside the run


def pytest_sessionfinish(session: pytest.Session) -> None:
    from tests import code_checks

    code_checks.stop()


def draw_board(rng: np.random.Generator, size: int = 640) -> np.ndarray:
    """A binarised board-like image: white traces and pads on black."""
    img = np.zeros((size, size), np.uint8)
    for _ in range(12):
        x1, y1, x2, y2 = (int(v) for v in rng.integers(0, size, 4))
        cv2.line(img, (x1, y1), (x2, y1), 255, int(rng.integers(4, 14)))
        cv2.line(img, (x2, y1), (x2, y2), 255, int(rng.integers(4, 14)))
    for _ in range(8):
        cv2.circle(img, tuple(int(v) for v in rng.integers(20, size - 20, 2)), int(rng.integers(6, 16)), 255, -1)
    return img


def make_deeppcb(
    root: Path,
    boards: int = 6,
    sep: str = ",",
    seed: int = 0,
    size: int = 640,
    lists: tuple[str, ...] = ("trainval.txt",),
) -> Path:
    """Write a small DeepPCB-layout folder; defect boxes are real marks drawn on the board."""
    rng = np.random.default_rng(seed)
    pcb = root / "PCBData"
    group = "group12000"
    img_dir, lbl_dir = pcb / group / "12000", pcb / group / "12000_not"
    img_dir.mkdir(parents=True, exist_ok=True)
    lbl_dir.mkdir(parents=True, exist_ok=True)
    lines: dict[str, list[str]] = {name: [] for name in lists}
    for i in range(boards):
        board_id = f"12000{i:03d}"
        temp = draw_board(rng, size)
        test = temp.copy()
        rows = []
        for _ in range(int(rng.integers(2, 5))):
            x1, y1 = (int(v) for v in rng.integers(10, size - 60, 2))
            w, h = (int(v) for v in rng.integers(20, 45, 2))
            kind = int(rng.integers(1, 7))
            cv2.rectangle(test, (x1 + 4, y1 + 4), (x1 + w - 4, y1 + h - 4), 255 if kind % 2 else 0, -1)
            rows.append(sep.join(str(v) for v in (x1, y1, x1 + w, y1 + h, kind)))
        cv2.imwrite(str(img_dir / f"{board_id}_test.jpg"), test)
        cv2.imwrite(str(img_dir / f"{board_id}_temp.jpg"), temp)
        (lbl_dir / f"{board_id}.txt").write_text("\n".join(rows) + "\n")
        list_name = lists[i % len(lists)]
        lines[list_name].append(f"{group}/12000/{board_id}.jpg {group}/12000_not/{board_id}.txt")
    for name, entries in lines.items():
        (pcb / name).write_text("\n".join(entries) + "\n")
    return root


@pytest.fixture
def deeppcb_factory(tmp_path: Path) -> Callable[..., Path]:
    """Build a DeepPCB-layout folder under tmp_path; keyword args as make_deeppcb."""
    counter = iter(range(1000))

    def build(**kwargs: object) -> Path:
        return make_deeppcb(tmp_path / f"deeppcb{next(counter)}", **kwargs)  # type: ignore[arg-type]

    return build


@pytest.fixture
def detections_factory() -> Callable[..., Detections]:
    """Detections from plain lists: boxes [[x1,y1,x2,y2], ...], confidences, class ids."""

    def build(
        boxes: list[list[float]],
        conf: list[float] | None = None,
        cls: list[int] | None = None,
        names: tuple[str, ...] = ("a", "b"),
    ) -> Detections:
        n = len(boxes)
        return Detections(
            np.asarray(boxes, np.float32).reshape(n, 4),
            np.asarray(conf if conf is not None else [0.9] * n, np.float32),
            np.asarray(cls if cls is not None else [0] * n, np.int64),
            names,
        )

    return build


def deeppcb_source() -> Path:
    """The real DeepPCB train/val folder: $TWINSPECT_DEEPPCB, else ../shared beside the checkout (as CI has
    it), else ../shared beside the checkout this one was cloned from (a clone made elsewhere, e.g. /tmp)."""
    import os
    import subprocess

    if "TWINSPECT_DEEPPCB" in os.environ:
        candidates = [Path(os.environ["TWINSPECT_DEEPPCB"])]
    else:
        candidates = [REPO.parent / "shared" / "datasets" / "deeppcb-trainval"]
        origin = subprocess.run(
            ["git", "-C", str(REPO), "remote", "get-url", "origin"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if origin and Path(origin).is_dir():
            candidates.append(Path(origin).resolve().parent / "shared" / "datasets" / "deeppcb-trainval")
    for src in candidates:
        if (src / "PCBData" / "trainval.txt").is_file():
            os.environ.setdefault("TWINSPECT_DEEPPCB", str(src))  # the processes tests start find it too
            return src
    pytest.fail(f"real DeepPCB data not found at {', '.join(map(str, candidates))} (set TWINSPECT_DEEPPCB)")


# How many real validation boards the real_deeppcb fixtures import: the tests read the first 24 of
# the validation split (sorted by name, as YoloDataset.images gives them); a few training boards
# come along so that every split the importer writes has boards.
REAL_VAL_BOARDS = 30
REAL_TRAIN_BOARDS = 2


def real_val_subset(dest: Path, n_val: int = REAL_VAL_BOARDS, n_train: int = REAL_TRAIN_BOARDS) -> Path:
    """A DeepPCB-layout folder with the first ``n_val`` real validation boards and ``n_train`` training
    boards, by the importer's own split rule: imported, its val split holds the same boards, in the
    same order, as the head of the full import's (the split is per board id, not per folder)."""
    from inspection.ml.datasets.deeppcb import is_validation

    lines = [ln for ln in (deeppcb_source() / "PCBData" / "trainval.txt").read_text().split("\n") if ln.strip()]

    def board_id(line: str) -> str:
        return Path(line.split()[0]).stem

    val = sorted((ln for ln in lines if is_validation(board_id(ln), 20)), key=board_id)[:n_val]
    train = [ln for ln in lines if not is_validation(board_id(ln), 20)][:n_train]
    return copy_boards(dest, train + val)


@pytest.fixture(scope="session")
def real_deeppcb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real DeepPCB boards (the head of the validation split, see real_val_subset) imported by the
    project's importer; returns the data YAML."""
    from inspection.ml.datasets.deeppcb import import_deeppcb

    root = tmp_path_factory.mktemp("real")
    import_deeppcb(real_val_subset(root / "src"), root / "deeppcb")
    return root / "deeppcb" / "data.yaml"


@pytest.fixture(scope="session")
def real_deeppcb_reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real DeepPCB boards (as real_deeppcb) imported as 3-plane reference pairs (--input reference); the data YAML."""
    from inspection.ml.datasets.deeppcb import import_deeppcb

    root = tmp_path_factory.mktemp("real-ref")
    import_deeppcb(real_val_subset(root / "src"), root / "deeppcb-ref", input_kind="reference")
    return root / "deeppcb-ref" / "data.yaml"


def real_board_subset(dest: Path, n: int, offset: int = 0) -> Path:
    """A DeepPCB-layout folder with ``n`` real boards (tested image, template, labels) from the shared data."""
    lines = (deeppcb_source() / "PCBData" / "trainval.txt").read_text().split("\n")[offset : offset + n]
    return copy_boards(dest, lines)


def copy_boards(dest: Path, lines: list[str]) -> Path:
    """A DeepPCB-layout folder at ``dest`` with the boards of these ``trainval.txt`` lines."""
    import shutil

    src = deeppcb_source() / "PCBData"
    pcb = dest / "PCBData"
    for line in lines:
        img, label = line.split()
        stem = (src / img).with_suffix("")
        for suffix in ("_test.jpg", "_temp.jpg"):
            target = pcb / Path(img).parent / (stem.name + suffix)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(stem.with_name(stem.name + suffix), target)
        (pcb / label).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src / label, pcb / label)
    (pcb / "trainval.txt").write_text("\n".join(lines) + "\n")
    return dest


@dataclass(frozen=True)
class StoredReplay:
    """What one ``twinspect replay --json`` wrote: the boards it showed, its data dir, its lines."""

    boards: Path  # a DeepPCB-layout folder of 6 real boards (each shown twice: 12 parts)
    data: Path  # --data-dir: twinspect.db (inspections, event log) and evidence/
    per_board: list[dict[str, Any]]  # one JSON line per inspected part
    summary: dict[str, Any]


@pytest.fixture(scope="session")
def stored_replay(tmp_path_factory: pytest.TempPathFactory) -> StoredReplay:
    """One stored replay through the real CLI with the served defaults (the shipped models: the
    reference defect model, so every board is compared with its own golden), one camera, over 6
    real boards. Whole-process replays are the suite's dearest checks: the tests that look at a
    stored run (every board once, the event log beside the store, the golden kept with each
    verdict) share this one and only read it."""
    from tests.cli import run_cli

    root = tmp_path_factory.mktemp("stored-replay")
    boards = real_board_subset(root / "boards", 6, offset=40)
    data = root / "data"
    r = run_cli("replay", "--boards", str(boards), "--json", "--data-dir", str(data), "--cameras", "1", timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = [json.loads(x) for x in r.stdout.strip().splitlines()]
    return StoredReplay(boards, data, lines[:-1], lines[-1]["summary"])


def plain_model_dir() -> Path:
    """The shipped plain-image defect model (``weights/defect-yolov8n-v1``) with its fp32 ONNX file.

    v1 ships as ``model.pt``, INT8 and card (the working tree stays under the GPU tool's 64 MiB);
    its fp32 ONNX file (git-ignored) is exported the first time it is asked for, as ``twinspect
    export`` does, and moved into place atomically. Anything that reads v1's ONNX file calls this
    (``tests.api.test_model_delivery.add_version`` does) or takes the ``plain_model`` fixture.
    """
    import os
    import shutil
    import tempfile

    from inspection.ml.export import export_onnx

    shipped = REPO / "weights" / "defect-yolov8n-v1"
    if not (shipped / "model.onnx").is_file():
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copy(shipped / "model.pt", Path(tmp) / "model.pt")
            onnx = export_onnx(Path(tmp) / "model.pt", imgsz=640, dynamic_batch=True)
            os.replace(onnx, shipped / "model.onnx")
    return shipped


@pytest.fixture(scope="session")
def plain_model() -> Path:
    """See :func:`plain_model_dir`."""
    return plain_model_dir()


@pytest.fixture(scope="session")
def reference_model() -> Path:
    """The shipped default defect model (``defect-yolov8n``, v3): it takes reference input (board,
    golden, difference). Tests must not write into it."""
    import json

    from inspection.inference.cards import resolve_model_dir

    folder = resolve_model_dir(REPO / "weights" / "defect-yolov8n")
    assert json.loads((folder / "card.json").read_text()).get("input") == "reference", folder
    return folder


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, below the kernel's ephemeral range.

    A server that a test stops and starts again must get its port back: a port from the ephemeral
    range can meanwhile become the local end of some outgoing connection, among them a client's own
    reconnect to it (a TCP self-connect on loopback), and the restart then fails 'address in use'.
    """
    import random
    import socket

    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    low = max(low, 12000)
    for _ in range(200):
        port = random.SystemRandom().randrange(10000, low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:  # the low range is full: any free port
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(pred: Callable[[], bool], timeout: float = 30.0, step: float = 0.01) -> bool:
    """Poll ``pred`` until it holds or ``timeout`` seconds pass; its last answer.

    Wait for the state a test checks, never sleep and assume it came: the timeout only says when to
    give up on a state that is not coming, so it is long (a busy machine makes a test slower, never
    wrong); a wait that holds returns as soon as it holds. A test that claims a latency states it as
    its own timeout.
    """
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


@pytest.fixture
def token_store(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A TokenStore on a fresh database of the test's own."""
    from api.tokens import TokenStore
    from inspection.store import open_database

    engine = open_database(f"sqlite:///{tmp_path / 'tokens.db'}")
    yield TokenStore(engine)
    engine.dispose()


def bearer_for(token_store, role: str = "admin") -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Authorization headers with a new token of ``role``."""
    _, clear = token_store.create(role, f"test-{role}")
    return {"Authorization": f"Bearer {clear}"}
