"""Dynamic batching: concurrent requests run together, in order, off the event loop."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from insightray.config import data_root
from insightray.serving.app import create_app
from insightray.serving.hosting.batching import DynamicBatcher
from insightray.serving.hosting.inference import ModelLoader
from insightray.serving.security.users import create_user
from insightray.serving.settings import ServeSettings
from tests.serving.api.conftest import FAST, PASSWORD


def test_batcher_groups_concurrent_items_and_keeps_their_order() -> None:
    threads: set[str] = set()

    def double(items: list[int]) -> list[int]:
        threads.add(threading.current_thread().name)
        return [item * 2 for item in items]

    async def main() -> tuple[list[int], list[int]]:
        with ThreadPoolExecutor(1, thread_name_prefix="pool") as pool:
            batcher = DynamicBatcher(double, pool, max_batch_size=4, max_delay_ms=50)
            results = await asyncio.gather(*(batcher.submit(i) for i in range(10)))
            await batcher.close()
        return list(results), batcher.batch_sizes

    results, sizes = asyncio.run(main())
    assert results == [i * 2 for i in range(10)]
    assert sum(sizes) == 10 and max(sizes) == 4 and all(size <= 4 for size in sizes)
    assert threads == {"pool_0"}  # never on the event loop's thread


def test_batcher_passes_a_failure_to_every_waiting_request() -> None:
    def broken(items: list[int]) -> list[int]:
        raise ValueError("boom")

    async def main() -> list[BaseException | int]:
        with ThreadPoolExecutor(1) as pool:
            batcher = DynamicBatcher(broken, pool, max_batch_size=4, max_delay_ms=20)
            outcome = await asyncio.gather(
                *(batcher.submit(i) for i in range(3)), return_exceptions=True
            )
            await batcher.close()
        return list(outcome)

    assert all(isinstance(item, ValueError) for item in asyncio.run(main()))


def test_concurrent_analyze_requests_form_batches(
    serve_settings: ServeSettings, model_loader: ModelLoader
) -> None:
    images = sorted((data_root() / "cxr" / "tbx11k" / "images").glob("tb*.jpg"))[:6]
    if len(images) < 6:
        pytest.skip("TBX11K sample not found")
    settings = dataclasses.replace(
        serve_settings, **FAST, batch_max_size=8, batch_max_delay_ms=250.0
    )
    app = create_app(settings, loader=model_loader, warm_up=False)

    async def main() -> tuple[list[int], list[int]]:
        async with app.router.lifespan_context(app):
            services = app.state.services
            create_user(services.db, "batch1", "clinician", PASSWORD)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                form = {"username": "batch1", "password": PASSWORD}
                token = (await client.post("/v1/auth/token", data=form)).json()
                headers = {"Authorization": f"Bearer {token['access_token']}"}

                async def analyze(study_id: str) -> int:
                    url = f"/v1/studies/{study_id}/analyze"
                    response = await client.post(url, json={"task": "cxr"}, headers=headers)
                    return response.status_code

                ids = []
                for path in images:  # distinct images: no cache hits
                    files = {"file": (path.name, path.read_bytes())}
                    study = await client.post("/v1/studies", files=files, headers=headers)
                    ids.append(study.json()["id"])
                await analyze(ids[0])  # loads the model (a batch of one)
                codes = await asyncio.gather(*(analyze(sid) for sid in ids[1:]))
            (batcher,) = services.host.batchers.values()
            return list(batcher.batch_sizes), list(codes)

    sizes, codes = asyncio.run(main())
    assert codes == [200] * 5
    assert sizes[0] == 1 and max(sizes) > 1, sizes
    assert sum(sizes) == 6
