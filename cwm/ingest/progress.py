"""Progress bars over shards and videos (tqdm, on stderr), fed from any thread."""

from __future__ import annotations

import threading

from tqdm import tqdm


class Progress:
    def __init__(self, shards: int, videos: int, enabled: bool = True):
        self._lock = threading.Lock()
        self.shards = tqdm(total=shards, desc="tasks", unit="task", position=0,
                           disable=not enabled, dynamic_ncols=True)
        self.videos = tqdm(total=videos, desc="inputs", unit="input", position=1,
                           disable=not enabled, dynamic_ncols=True)
        self.failed = 0

    def video(self, status: str) -> None:
        with self._lock:
            if status == "failed":
                self.failed += 1
                self.videos.set_postfix(failed=self.failed, refresh=False)
            self.videos.update(1)

    def shard(self) -> None:
        with self._lock:
            self.shards.update(1)

    def close(self) -> None:
        self.videos.close()
        self.shards.close()
