"""Make Ultralytics unable to reach the network, then import it.

Ultralytics reaches out in several places: usage analytics (``utils/events.py``), the
PyPI update check (``check_pip_update_available``), the Platform/HUB callbacks
(``callbacks/platform.py`` with an API key), font downloads for plots
(``check_font`` -> ``safe_download``), weight downloads (``attempt_download_asset``
-> ``safe_download``, also used by ``check_amp`` on CUDA), dataset auto-download in
``check_det_dataset`` and pip auto-install in ``check_requirements``. Every one of
them goes through the switches or functions closed here:

- ``YOLO_OFFLINE=1`` before import: ``ONLINE`` is False, so analytics and the update
  check are off; ``YOLO_AUTOINSTALL=false``: no pip installs;
- settings ``sync`` off, ``api_key`` empty and every logger integration off;
- ``safe_download``, the GitHub release lookup ``get_github_assets``, the Google Drive
  lookup and the network probe of ``is_url`` raise :class:`OfflineError` (or answer
  "not reachable"), so a missing weights file is an error, never a download;
- ``check_amp`` (which would download a model on CUDA) is replaced by a local check;
- the plot font ``Arial.ttf`` is resolved to DejaVu Sans shipped inside matplotlib,
  copied into Ultralytics' config folder, so plots still render with a real font.

Only :func:`ultralytics` imports Ultralytics in twinspect; nothing on the serving path
calls it.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from inspection.core.errors import InspectionError

log = logging.getLogger(__name__)

_PLOT_FONTS = ("Arial.ttf", "Arial.Unicode.ttf")
_guarded = False


class OfflineError(InspectionError):
    """Something tried to fetch from the network; twinspect runs offline."""


def _refuse_download(*args: Any, **kwargs: Any) -> None:
    url = kwargs.get("url") or (args[0] if args else "?")
    raise OfflineError(f"twinspect runs offline: refused to download {url}")


def _set_environment(config_dir: Path) -> None:
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "false"
    os.environ.pop("ULTRALYTICS_API_KEY", None)
    os.environ.setdefault("YOLO_CONFIG_DIR", str(config_dir))
    os.environ.setdefault("MPLBACKEND", "Agg")


def _install_fonts(user_config_dir: Path) -> None:
    import matplotlib

    dejavu = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    user_config_dir.mkdir(parents=True, exist_ok=True)
    for name in _PLOT_FONTS:
        target = user_config_dir / name
        if not target.exists():
            shutil.copyfile(dejavu, target)


def _patch_modules(downloads: ModuleType) -> None:
    original_is_url = downloads.is_url

    def is_url_offline(url: Any, check: bool = False) -> bool:
        # A URL is never reachable offline; the syntax check stays.
        return False if check else bool(original_is_url(url, check=False))

    def check_amp_offline(model: Any) -> bool:
        log.info("AMP check skipped: it downloads a model; twinspect runs offline (AMP stays on)")
        return True

    replacements = {
        "safe_download": _refuse_download,
        "get_github_assets": _refuse_download,
        "get_google_drive_file_info": _refuse_download,
        "is_url": is_url_offline,
        "check_amp": check_amp_offline,
        "check_pip_update_available": lambda: False,
        "check_latest_pypi_version": lambda *a, **k: None,
    }
    for name, module in list(sys.modules.items()):
        if module is None or not name.startswith("ultralytics"):
            continue
        for attr, repl in replacements.items():
            if hasattr(module, attr):
                setattr(module, attr, repl)


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_EMOJI = re.compile("[\u2600-\u27bf\ufe0f\U0001f300-\U0001faff]")


def plain(text: str) -> str:
    """Ultralytics' text without terminal colour codes and emoji."""
    return " ".join(_EMOJI.sub("", _ANSI.sub("", text)).split())


class _Relay(logging.Handler):
    """Ultralytics' records as twinspect's: below WARNING at DEBUG, the rest as warnings; plain text."""

    def emit(self, record: logging.LogRecord) -> None:
        text = plain(record.getMessage())
        if text:
            log.log(logging.DEBUG if record.levelno < logging.WARNING else logging.WARNING, "ultralytics: %s", text)


@contextmanager
def relayed_logs() -> Iterator[None]:
    """While inside, Ultralytics prints nothing itself (banners, colours, hints at its own CLI and other
    tools): its log records go to twinspect's log (see ``_Relay``), so a command shows its own lines only."""
    logger = logging.getLogger("ultralytics")
    saved = logger.handlers[:], logger.propagate
    logger.handlers, logger.propagate = [_Relay()], False
    try:
        yield
    finally:
        logger.handlers, logger.propagate = saved


def ultralytics(config_dir: Path | None = None) -> ModuleType:
    """Return the ``ultralytics`` module with every network path closed.

    ``config_dir`` is where Ultralytics keeps its settings and fonts; by default a
    ``ultralytics`` folder in twinspect's user data dir.
    """
    global _guarded
    if _guarded:
        return sys.modules["ultralytics"]
    if "ultralytics" in sys.modules and os.environ.get("YOLO_OFFLINE") != "1":
        raise OfflineError(
            "ultralytics was imported before the offline guard; "
            "import it through inspection.inference.offline.ultralytics()"
        )
    default_dir = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    _set_environment(config_dir or default_dir / "twinspect" / "ultralytics")
    import ultralytics as ul
    import ultralytics.engine.trainer  # noqa: F401  (load the modules holding the names we patch)
    import ultralytics.utils.checks  # noqa: F401
    from ultralytics.utils import SETTINGS, USER_CONFIG_DIR, downloads

    SETTINGS.update(
        {
            "sync": False,
            "api_key": "",
            "clearml": False,
            "comet": False,
            "dvc": False,
            "mlflow": False,
            "raytune": False,
            "tensorboard": False,
            "wandb": False,
        }
    )
    _install_fonts(Path(USER_CONFIG_DIR))
    _patch_modules(downloads)
    _guarded = True
    return ul
