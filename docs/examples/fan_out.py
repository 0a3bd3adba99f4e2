"""Fan out a thousand jobs with the async client and gather their results as they end."""

import asyncio

from botfleet.client import AsyncClient


async def main() -> None:
    async with AsyncClient() as client:
        jobs = await client.submit_many([("sum", {"a": i, "b": 1}) for i in range(1000)])
        total = succeeded = 0
        async for done in client.as_completed(jobs, timeout=120):
            if done.state == "succeeded" and done.result is not None:
                succeeded += 1
                total += done.result["result"]
        print(f"{succeeded} of {len(jobs)} succeeded; the results add up to {total}")


if __name__ == "__main__":
    asyncio.run(main())
