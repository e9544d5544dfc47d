"""``twinspect retrain`` timed end to end (not a test): the dry run, then the whole loop step by step.

    python bench/bench_retrain.py [--epochs 2] [--reviewed 50] [--base DATA_YAML | --base-boards N]
                                  [--imgsz N] [--batch 16] [--open-gate] [--keep DIR]

1. A fresh data dir with a line, built by the product: ceil(K/2) real DeepPCB boards of the
   importer's training split (none of them in the gate's validation split) replayed through the
   simulated line (``twinspect replay``: each board shown defect-free and defective, the shipped
   reference model inspecting it against its own golden), then K of those inspections reviewed by a
   QA token through the API (``POST /api/v1/inspections/bulk-review``, as the review page does): a
   flagged defect-free board is rejected (a false reject), every other one confirmed.
2. The registry is a folder of the bench's own where the shipped default (``defect-yolov8n-v3``) is
   linked and activated on the line: the new version is written there, never into ``weights/``.
3. ``twinspect retrain --dry-run``, timed; then ``twinspect retrain``, its output read line by line
   as it comes: each step's wall time as the command prints it (dataset, training, register =
   export ONNX + eval + INT8 and its eval, gate, shadow), each epoch's from when its line came, and
   the outcome: the candidate in shadow, or the gate's refusal and why (exit 1, a result here too).

Base data: ``datasets/deeppcb-ref/data.yaml`` (the reference import in the checkout: 1,626 training
and 187 validation images); ``--base-boards N`` imports N real boards (reference input, about half
of them validation boards) into the bench's folder instead: a quick check of the bench itself.
``--open-gate`` opens the gate's margins as ``tests/api/test_retrain_full.py`` does, so that the
shadow step runs whatever the candidate scores. Training on this CPU halves when something else runs:
the load average before the bench starts is printed with the figures.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from api.cli.line import default_boards  # noqa: E402
from inspection.ml.datasets.deeppcb import find_pcbdata, is_validation  # noqa: E402

SHIPPED = REPO / "weights" / "defect-yolov8n-v3"  # the shipped default defect model (reference input)
LINE = "line-1"
STEP = re.compile(r"^step (?P<step>\S+): .*\((?P<s>\d+(?:\.\d+)?) s\)$")
EPOCH = re.compile(r"^\[twinspect\] epoch (?P<i>\d+)/(?P<n>\d+)")
OPEN_GATE = {"margin": 1.0, "class_recall_floor": 0.0, "false_reject_margin": 1.0, "miss_margin": 1.0}
NAMES = {
    "1": "dataset (reviewed boards + base, step 1)",
    "2": "train (step 2)",
    "3-4": "register: export ONNX, eval, INT8 + eval (steps 3-4)",
    "5": "gate (step 5)",
    "6": "shadow (step 6)",
}


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "api.cli.main", *args]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def board_lines(split: str) -> list[str]:
    """trainval.txt lines of the real DeepPCB boards in the importer's ``split`` (val: 20%)."""
    pcb = find_pcbdata(default_boards())
    lines = [x for x in (pcb / "trainval.txt").read_text().splitlines() if x.strip()]
    return [x for x in lines if is_validation(Path(x.split()[0]).stem, 20) == (split == "val")]


def board_folder(dest: Path, lines: list[str]) -> Path:
    """A DeepPCB-layout folder of these boards (tested image, template, labels linked, not copied)."""
    src = find_pcbdata(default_boards())
    pcb = dest / "PCBData"
    for line in lines:
        image, label = line.split()
        stem = (src / image).with_suffix("")
        for suffix in ("_test.jpg", "_temp.jpg"):
            target = pcb / Path(image).parent / (stem.name + suffix)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(stem.with_name(stem.name + suffix))
        (pcb / label).parent.mkdir(parents=True, exist_ok=True)
        (pcb / label).symlink_to(src / label)
    (pcb / "trainval.txt").write_text("\n".join(lines) + "\n")
    return dest


def classes_of(line: str) -> set[int]:
    """The defect classes (1-6) a board's DeepPCB label file holds."""
    text = (find_pcbdata(default_boards()) / line.split()[1]).read_text()
    return {int(row.replace(",", " ").split()[4]) for row in text.splitlines() if row.strip()}


def tiny_base(root: Path, n: int) -> Path:
    """A reference base dataset of ``n`` real boards: about half validation boards, picked so that every class
    is there when it can be (the gate refuses a class it cannot measure), the rest training boards from the end
    of the training list (the reviewed boards come from its start)."""
    from inspection.ml.datasets.deeppcb import import_deeppcb

    n_val = max(1, n // 2)
    val: list[str] = []
    seen: set[int] = set()
    for line in board_lines("val"):
        if len(val) < n_val and (not classes_of(line) <= seen or len(seen) == 6):
            val.append(line)
            seen |= classes_of(line)
    val += [x for x in board_lines("val") if x not in val][: n_val - len(val)]
    lines = val + board_lines("train")[::-1][: max(1, n - n_val)]
    import_deeppcb(board_folder(root / "base-boards", lines), root / "base", input_kind="reference")
    return root / "base" / "data.yaml"


def cpu_busy(seconds: float = 1.0) -> float | None:
    """Share of all cores busy over ``seconds`` (/proc/stat), before the bench starts anything."""

    def sample() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        return sum(values), values[3] + values[4]  # all, idle + iowait

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    return 1 - (idle1 - idle0) / max(1, total1 - total0)


def build_line(root: Path, reviewed: int) -> tuple[Path, dict[str, Any]]:
    """The data dir: ceil(K/2) training boards replayed (2 parts each), K inspections reviewed through the API."""
    data = root / "data"
    boards = board_folder(root / "boards", board_lines("train")[: math.ceil(reviewed / 2)])
    t = time.monotonic()
    r = subprocess.run(
        cli("replay", "--boards", str(boards), "--json", "--data-dir", str(data), "--cameras", "1"),
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env(),
    )
    if r.returncode:
        sys.exit(f"replay failed ({r.returncode}):\n{r.stderr[-3000:]}")
    replay_s = time.monotonic() - t
    lines = [json.loads(x) for x in r.stdout.strip().splitlines()]
    board_of = {x["part_id"]: x["board"] for x in lines[:-1]}
    t = time.monotonic()
    counts = review(data, board_of, reviewed)
    return data, {
        "boards": len(board_of) // 2,
        "inspections": len(board_of),
        "replay_s": replay_s,
        "review_s": time.monotonic() - t,
        **counts,
    }


def review(data: Path, board_of: dict[str, str], k: int) -> dict[str, int]:
    """QA reviews ``k`` of the line's inspections through the API (bulk review, as the review page does)."""
    import warnings

    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.services import Services
    from api.settings import Settings
    from api.tokens import Role, TokenStore
    from inspection.core.classes import DEEPPCB_CLASSES
    from inspection.reference.recipe_store import RecipeStore
    from inspection.store import EvidenceStore, InspectionFilter, InspectionStore, open_database
    from sync.service import SyncService

    settings = Settings(data_dir=data)
    db = open_database(settings.database_url)
    store = InspectionStore(db, EvidenceStore(data / "evidence"))
    items: list[Any] = []
    cursor = None
    while len(items) < k:
        page = store.list(InspectionFilter(line_id=LINE), cursor=cursor, limit=500)
        items += page.items
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    if len(items) < k:
        sys.exit(f"the replay stored {len(items)} inspections on {LINE}, fewer than --reviewed {k}")
    # a defect-free board (the template) the model flagged: QA rejects it; everything else is confirmed
    flagged_good = {
        i.id for i in items[:k] if board_of.get(i.part_id, "").endswith("_temp.jpg") and i.outcome.value != "pass"
    }
    wrong = [i for i in items[:k] if i.id in flagged_good]
    right = [i for i in items[:k] if i.id not in flagged_good]
    tokens = TokenStore(db)
    _, qa = tokens.create(Role.QA, "bench-qa")
    services = Services(
        engine=None,
        sync=SyncService.open(db, settings.sync, forwarders=False),
        tokens=tokens,
        inspections=store,
        class_names=DEEPPCB_CLASSES,
        recipes=RecipeStore(db, settings.goldens_dir),
    )
    with TestClient(create_app(services)) as client:
        for action, chosen in (("confirm", right), ("reject", wrong)):
            for start in range(0, len(chosen), 500):
                body = {"action": action, "items": [{"id": i.id, "version": i.version} for i in chosen[start:][:500]]}
                res = client.post(
                    "/api/v1/inspections/bulk-review", json=body, headers={"Authorization": f"Bearer {qa}"}
                )
                if res.status_code != 200 or res.json()["skipped"]:
                    sys.exit(f"bulk review ({action}) failed: {res.status_code} {res.text[:2000]}")
    db.dispose()
    return {"confirmed": len(right), "rejected": len(wrong)}


def registry(root: Path) -> Path:
    """The bench's registry: the shipped v3 linked (its files, not copied)."""
    entry = root / "weights" / SHIPPED.name
    entry.mkdir(parents=True)
    for f in SHIPPED.iterdir():
        (entry / f.name).symlink_to(f)
    return entry.parent


def run_retrain(args: list[str]) -> tuple[int, float, list[tuple[float, str]], str]:
    """``twinspect retrain ARGS``: (exit code, wall s, stdout lines with their arrival s, stderr tail)."""
    t0 = time.monotonic()
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            cli("retrain", *args), cwd=REPO, stdout=subprocess.PIPE, stderr=err, text=True, env=env()
        )
        assert proc.stdout is not None
        lines = [(time.monotonic() - t0, raw.rstrip("\n")) for raw in proc.stdout]
        code = proc.wait()
        err.seek(0)
        tail = err.read()[-3000:]
    return code, time.monotonic() - t0, lines, tail


def report_run(lines: list[tuple[float, str]], wall: float) -> None:
    steps: dict[str, float] = {}
    arrived: dict[str, float] = {}
    epochs: list[tuple[str, float]] = []
    for t, text in lines:
        m = STEP.match(text)
        if m:
            steps[m["step"]] = float(m["s"])
            arrived[m["step"]] = t
        m = EPOCH.match(text)
        if m:
            epochs.append((f"{m['i']}/{m['n']}", t))
    for key, name in NAMES.items():
        if key in steps:
            print(f"  {name:58s} {steps[key]:8.1f} s")
        elif key in ("5", "6"):
            print(f"  {name:58s} {'-':>8s}   (not reached)")
        if key == "2" and epochs and "1" in arrived:
            before = arrived["1"]
            for i, (label, t) in enumerate(epochs):
                note = " (with Ultralytics' set-up: model, dataset scan)" if i == 0 else ""
                print(f"    epoch {label:8s} {'':40s} {t - before:8.1f} s{note}")
                before = t
            if "2" in arrived:
                print(f"    {'after the last epoch: final validation of best.pt':54s} {arrived['2'] - before:8.1f} s")
    print(f"  {'total (the command, from its start: imports, plan, steps)':58s} {wall:8.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=2, help="Epochs of the full run (the CLI's default is 20).")
    ap.add_argument("--reviewed", type=int, default=50, help="Reviewed inspections on the line (K).")
    base = ap.add_mutually_exclusive_group()
    base.add_argument("--base", type=Path, default=REPO / "datasets" / "deeppcb-ref" / "data.yaml", help="Base data.")
    base.add_argument("--base-boards", type=int, help="Import N real boards as the base instead (a quick check).")
    ap.add_argument("--imgsz", type=int, help="Training image size (default: the active model's, 640).")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--open-gate", action="store_true", help="Open the gate's margins: the shadow step always runs.")
    ap.add_argument("--keep", type=Path, help="Build everything in this (new) folder and keep it.")
    args = ap.parse_args()

    from line_bench import host

    load = os.getloadavg()
    busy = cpu_busy()
    cores = os.cpu_count() or 1
    print(f"host: {host()}")
    other = load[0] >= 0.5 or (busy is not None and busy >= 0.25)
    busy_text = f", {100 * busy:.0f}% of the cores busy over 1 s" if busy is not None else ""
    print(
        f"before the bench: load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1 / 5 / 15 min) on {cores} "
        f"cores{busy_text}: "
        + ("something else was running (slower figures than an idle machine's)" if other else "the machine was idle")
    )

    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=False)
        root = args.keep.resolve()
    else:
        root = Path(tempfile.mkdtemp(prefix="bench-retrain-"))
    try:
        t = time.monotonic()
        data_yaml = tiny_base(root, args.base_boards) if args.base_boards else args.base.resolve()
        if args.base_boards:
            print(f"base: {args.base_boards} real boards imported (reference input) in {time.monotonic() - t:.1f} s")
        data, line = build_line(root, args.reviewed)
        print(
            f"line {LINE}: {line['boards']} real training boards replayed -> {line['inspections']} inspections in "
            f"{line['replay_s']:.1f} s; {args.reviewed} reviewed through the API ({line['confirmed']} confirmed, "
            f"{line['rejected']} rejected) in {line['review_s']:.1f} s"
        )
        weights = registry(root)
        common = ["--line", LINE, "--data-dir", str(data), "--weights-dir", str(weights)]
        if args.open_gate:
            import yaml

            config = root / "twinspect.yaml"
            config.write_text(yaml.safe_dump({"delivery": {"gate": OPEN_GATE}}))
            common += ["--config", str(config)]
        r = subprocess.run(
            cli("models", "activate", "defect-yolov8n:3", "--reason", "bench", *common),
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        if r.returncode:
            sys.exit(f"models activate failed: {r.stderr}")
        opts = ["--data", str(data_yaml), "--epochs", str(args.epochs), "--batch", str(args.batch), *common]
        if args.imgsz:
            opts += ["--imgsz", str(args.imgsz)]

        code, wall, lines, tail = run_retrain(["--dry-run", *opts])
        if code:
            sys.exit(f"retrain --dry-run failed ({code}):\n{tail}")
        plan = next((x for _, x in lines if x.startswith("dry run:")), "")
        print(f"retrain --dry-run: {wall:.1f} s wall ({plan})")
        for _, text in lines:
            if text.startswith(("  reviewed inspections", "  reference input", "  base dataset", "  image size")):
                print(f"  {text.strip()}")

        code, wall, lines, tail = run_retrain(opts)
        refused = next((x for _, x in lines if x.startswith("step 5: the gate refused")), None)
        if code and not (code == 1 and refused):
            print("\n".join(x for _, x in lines[-40:]))
            sys.exit(f"retrain failed ({code}):\n{tail}")
        print(f"retrain, {args.epochs} epoch(s), batch {args.batch}:")
        report_run(lines, wall)
        shadow = next((x for _, x in lines if x.startswith("step 6:")), None)
        outcome = shadow.split(";")[0] if shadow else re.sub(r" \(\d+(?:\.\d+)? s\)$", "", refused or "")
        outcome = outcome.removeprefix("step 6: ").removeprefix("step 5: ")
        print(f"outcome: {outcome}")
        load = os.getloadavg()
        print(f"after: load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (this bench's own work included)")
        if args.keep is not None:
            print(f"kept: {root}")
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
