import asyncio

import numpy as np
import pytest

from cnnkit.serve.batching import MicroBatcher


def double(batch):
    return batch.reshape(len(batch), -1)[:, :1].astype(np.float32) * 2


async def _gather(batcher, sizes):
    jobs = [batcher.submit(np.full((n, 2, 2, 1), i, np.uint8)) for i, n in enumerate(sizes)]
    return await asyncio.gather(*jobs, return_exceptions=True)


def test_concurrent_submissions_share_a_batch_and_get_their_own_rows():
    batcher = MicroBatcher(double, max_batch=64, max_wait=0.05)

    async def main():
        try:
            return await _gather(batcher, [1, 3, 2])
        finally:
            await batcher.close()

    results = asyncio.run(main())
    assert [r.shape for r in results] == [(1, 1), (3, 1), (2, 1)]
    assert [float(r[0, 0]) for r in results] == [0.0, 2.0, 4.0]
    assert batcher.stats() == {"batches": 1, "images": 6, "largest_batch": 6, "mean_batch": 6.0}
    batcher.shutdown()


def test_max_batch_splits_work():
    batcher = MicroBatcher(double, max_batch=2, max_wait=0.05)

    async def main():
        try:
            return await _gather(batcher, [1, 1, 1, 1, 1])
        finally:
            await batcher.close()

    assert len(asyncio.run(main())) == 5
    assert batcher.largest == 2 and batcher.batches == 3
    batcher.shutdown()


def test_an_error_reaches_every_waiting_request_and_the_worker_survives():
    calls = []

    def flaky(batch):
        calls.append(len(batch))
        if len(calls) == 1:
            raise RuntimeError("boom")
        return double(batch)

    batcher = MicroBatcher(flaky, max_wait=0.05)

    async def main():
        try:
            first = await _gather(batcher, [1, 1])
            second = await _gather(batcher, [1])
            return first, second
        finally:
            await batcher.close()

    first, second = asyncio.run(main())
    assert all(isinstance(r, RuntimeError) for r in first)
    assert second[0].shape == (1, 1)
    batcher.shutdown()


def test_new_event_loop_restarts_the_worker():
    batcher = MicroBatcher(double, max_wait=0)
    for _ in range(2):  # asyncio.run makes a fresh loop each time
        assert asyncio.run(_gather(batcher, [1]))[0].shape == (1, 1)
    batcher.shutdown()
    with pytest.raises(ValueError):
        MicroBatcher(double, max_batch=0)
