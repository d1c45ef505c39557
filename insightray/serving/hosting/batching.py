"""Dynamic batching: requests queue and run together, up to a batch size or a delay.

One :class:`DynamicBatcher` serves one model version. Callers ``await batcher.submit(item)``;
a worker task takes the first waiting item, waits at most ``max_delay_ms`` for more (up to
``max_batch_size``), then runs the whole batch with ``run_batch`` in a thread pool so the event
loop stays free. While a batch runs, new requests queue up and form the next one, so batches
grow with the load (the scheme of Triton's dynamic batcher). One batch per model runs at a
time; several models share the pool.

Example:
    >>> import asyncio
    >>> from concurrent.futures import ThreadPoolExecutor
    >>> async def demo() -> list[int]:
    ...     with ThreadPoolExecutor(1) as pool:
    ...         batcher = DynamicBatcher(lambda xs: [x * 2 for x in xs], pool, 4, 5.0)
    ...         results = await asyncio.gather(*(batcher.submit(i) for i in range(3)))
    ...         await batcher.close()
    ...         return results
    >>> asyncio.run(demo())
    [0, 2, 4]
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Generic, TypeVar

from insightray.errors import ConfigError, ServiceUnavailableError

__all__ = ["DynamicBatcher"]

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")


class DynamicBatcher(Generic[ItemT, ResultT]):
    """Collect concurrent requests into batches and run them off the event loop.

    Args:
        run_batch: Maps a list of items to a list of results of the same length, in order.
        executor: Where ``run_batch`` runs.
        max_batch_size: Most items per batch.
        max_delay_ms: Longest wait for more items once the first one arrived.
        on_batch: Called with each batch's size (for metrics).
        on_queue: Called with the queue depth whenever it changes (for metrics).
    """

    def __init__(
        self,
        run_batch: Callable[[list[ItemT]], Sequence[ResultT]],
        executor: Executor,
        max_batch_size: int = 8,
        max_delay_ms: float = 10.0,
        on_batch: Callable[[int], None] | None = None,
        on_queue: Callable[[int], None] | None = None,
    ) -> None:
        if max_batch_size < 1 or max_delay_ms < 0:
            raise ConfigError(
                f"batching {max_batch_size} items / {max_delay_ms} ms",
                "the batch size must be at least 1 and the delay not negative",
                "use e.g. 8 items and 10 ms",
            )
        self._run_batch = run_batch
        self._executor = executor
        self.max_batch_size = max_batch_size
        self.max_delay_s = max_delay_ms / 1000.0
        self._on_batch = on_batch
        self._on_queue = on_queue
        self._queue: asyncio.Queue[tuple[ItemT, asyncio.Future[ResultT]]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._closed = False
        #: Sizes of the batches run so far (the last 1000), for tests and diagnostics.
        self.batch_sizes: list[int] = []

    @property
    def queue_depth(self) -> int:
        """Items waiting for a batch."""
        return self._queue.qsize()

    async def submit(self, item: ItemT) -> ResultT:
        """Queue ``item`` and wait for its result (its batch's exception, if it failed).

        Raises:
            ServiceUnavailableError: The batcher is closed (the service is shutting down).
        """
        if self._closed:
            raise ServiceUnavailableError(
                "model", "the service is shutting down", "retry on another replica or later"
            )
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._work())
        future: asyncio.Future[ResultT] = asyncio.get_running_loop().create_future()
        await self._queue.put((item, future))
        self._report_queue()
        return await future

    async def close(self) -> None:
        """Stop taking work; requests still queued fail with :class:`ServiceUnavailableError`."""
        self._closed = True
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        while not self._queue.empty():
            _, future = self._queue.get_nowait()
            if not future.done():
                future.set_exception(
                    ServiceUnavailableError("model", "the service stopped", "retry later")
                )

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            deadline = loop.time() + self.max_delay_s
            while len(batch) < self.max_batch_size:
                if not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                    continue
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), remaining))
                except TimeoutError:
                    break
            self._report_queue()
            live = [(item, future) for item, future in batch if not future.cancelled()]
            if live:
                await self._run(loop, live)

    async def _run(
        self,
        loop: asyncio.AbstractEventLoop,
        batch: list[tuple[ItemT, asyncio.Future[ResultT]]],
    ) -> None:
        self.batch_sizes = [*self.batch_sizes[-999:], len(batch)]
        if self._on_batch is not None:
            self._on_batch(len(batch))
        items = [item for item, _ in batch]
        try:
            results = await loop.run_in_executor(self._executor, self._run_batch, items)
            if len(results) != len(items):
                raise RuntimeError(f"{len(results)} results for a batch of {len(items)}")
        except Exception as error:  # every waiting request gets the batch's failure
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    def _report_queue(self) -> None:
        if self._on_queue is not None:
            self._on_queue(self._queue.qsize())
