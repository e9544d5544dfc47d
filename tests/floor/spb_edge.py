"""A Sparkplug B edge node alone in its process (for the kill -9 test): ``python -m tests.floor.spb_edge PORT``."""

from __future__ import annotations

import sys
import time

from floor.config import SparkplugSettings
from floor.sparkplug.node import SparkplugNode

if __name__ == "__main__":
    node = SparkplugNode(
        SparkplugSettings(enabled=True, port=int(sys.argv[1]), keepalive_s=5), "edge-k9", "line-1", lambda line: None
    )
    node.start()
    while node.births == 0:
        time.sleep(0.05)
    print("born", node.bdseq, flush=True)
    time.sleep(600)
