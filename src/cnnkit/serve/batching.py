"""An asyncio micro-batcher: concurrent requests share one forward pass.

Each request ``await``s ``submit(images)``; one worker task takes everything queued (up to
``max_batch`` images, waiting at most ``max_wait`` seconds for company), runs the model once
in a single worker thread, and hands each request its rows. Under load, requests that arrive
while the model runs form the next batch by themselves.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np


class MicroBatcher:
    def __init__(self, fn: Callable[[np.ndarray], np.ndarray], max_batch: int = 64,
                 max_wait: float = 0.002):
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.fn = fn  # N×H×W×C uint8 -> N×K, run in the worker thread
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="cnnkit-model")
        self.batches = 0
        self.images = 0
        self.largest = 0
        self._loop = None
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None

    def _start(self) -> None:
        """(Re)start the worker on the running loop (a test client may bring a new loop)."""
        loop = asyncio.get_running_loop()
        if self._loop is loop and self._task is not None and not self._task.done():
            return
        self._loop, self._queue = loop, asyncio.Queue()
        self._task = loop.create_task(self._work(), name="cnnkit-batcher")

    async def submit(self, images: np.ndarray) -> np.ndarray:
        """Probabilities for ``images`` (n×H×W×C), computed together with other requests."""
        self._start()
        future = self._loop.create_future()
        await self._queue.put((images, future))
        return await future

    async def run(self, fn, *args):
        """Run other model work (Grad-CAM) in the same thread, so it never races a batch."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def _collect(self) -> list:
        queue = self._queue
        items = [await queue.get()]
        count = len(items[0][0])
        deadline = self._loop.time() + self.max_wait
        while count < self.max_batch:
            try:
                item = queue.get_nowait()
            except asyncio.QueueEmpty:
                left = deadline - self._loop.time()
                if left <= 0:
                    break
                try:
                    item = await asyncio.wait_for(queue.get(), left)
                except asyncio.TimeoutError:
                    break
            items.append(item)
            count += len(item[0])
        return items

    async def _work(self) -> None:
        while True:
            items = await self._collect()
            live = [(x, f) for x, f in items if not f.done()]  # drop requests that went away
            if not live:
                continue
            batch = np.concatenate([x for x, _ in live]) if len(live) > 1 else live[0][0]
            try:
                probs = await self._loop.run_in_executor(self.executor, self.fn, batch)
            except Exception as e:  # noqa: BLE001 - every waiting request gets the error
                for _, f in live:
                    if not f.done():
                        f.set_exception(e)
                continue
            self.batches += 1
            self.images += len(batch)
            self.largest = max(self.largest, len(batch))
            start = 0
            for x, f in live:
                if not f.done():
                    f.set_result(probs[start:start + len(x)])
                start += len(x)

    def stats(self) -> dict:
        return {"batches": self.batches, "images": self.images, "largest_batch": self.largest,
                "mean_batch": round(self.images / self.batches, 2) if self.batches else 0.0}

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
            self._task = None

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
