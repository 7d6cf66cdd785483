"""Progress bars over shards and videos (tqdm, on stderr), fed from any thread.

Disabled (`--no-progress`), nothing is drawn and tqdm is not even imported (~30 ms of start-up).
"""

from __future__ import annotations

import threading


class Progress:
    def __init__(self, shards: int, videos: int, enabled: bool = True):
        self._lock = threading.Lock()
        self.failed = 0
        self.enabled = enabled
        if not enabled:
            return
        from tqdm import tqdm

        self.shards = tqdm(total=shards, desc="tasks", unit="task", position=0,
                           dynamic_ncols=True)
        self.videos = tqdm(total=videos, desc="inputs", unit="input", position=1,
                           dynamic_ncols=True)

    def video(self, status: str) -> None:
        with self._lock:
            self.failed += status == "failed"
            if self.enabled:
                if status == "failed":
                    self.videos.set_postfix(failed=self.failed, refresh=False)
                self.videos.update(1)

    def shard(self) -> None:
        if self.enabled:
            with self._lock:
                self.shards.update(1)

    def close(self) -> None:
        if self.enabled:
            self.videos.close()
            self.shards.close()
