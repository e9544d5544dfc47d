"""Stand-in for polars on the GPU machine, where polars is not installed (and its ~50 MB wheel
would not fit in what a device run may carry).

bench/gpu_train.sh puts this folder first on PYTHONPATH; nothing else ever imports it.
Ultralytics 8.4.190 needs polars during training only in ``BaseTrainer.read_results_csv``,
called at every checkpoint save: ``pl.read_csv(bytes, infer_schema_length=None).to_dict(as_series=False)``
(the ``import polars`` sits outside its try, so a missing polars would end the run). The other
uses, the label and results plots, are off (``plots=False``). Anything else raises AttributeError.
"""

from __future__ import annotations

import csv
import io
from typing import Any

__version__ = "0.0.0+twinspect-stub"


def _number(text: str) -> Any:
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


class DataFrame:
    """Columns of a CSV file, as plain lists."""

    def __init__(self, columns: dict[str, list[Any]]) -> None:
        self._columns = columns

    def to_dict(self, as_series: bool = True) -> dict[str, list[Any]]:
        return {k: list(v) for k, v in self._columns.items()}


def read_csv(source: Any, infer_schema_length: int | None = None, **_: Any) -> DataFrame:
    """The subset of ``polars.read_csv`` Ultralytics uses: bytes, str path or file, header row."""
    if isinstance(source, (bytes, bytearray)):
        text = bytes(source).decode()
    elif hasattr(source, "read"):
        text = source.read()
        text = text.decode() if isinstance(text, bytes) else text
    else:
        with open(source, encoding="utf-8") as fh:
            text = fh.read()
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return DataFrame({})
    header = [h.strip() for h in rows[0]]
    columns: dict[str, list[Any]] = {h: [] for h in header}
    for row in rows[1:]:
        for h, v in zip(header, row, strict=False):
            columns[h].append(_number(v))
    return DataFrame(columns)
