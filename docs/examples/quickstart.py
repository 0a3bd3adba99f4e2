"""Submit a job, wait for its result, and see how a failed job is reported.

Run with a coordinator and a bot up: BOTFLEET_SERVER and BOTFLEET_TOKEN (or
BOTFLEET_ADMIN_TOKEN) say where the coordinator is and which token to use.
"""

from botfleet.client import Client, JobFailed


def main() -> None:
    with Client() as client:
        job = client.submit("sum", {"a": 1, "b": 2}, priority=5)
        print(job.id, job.result(timeout=60))  # {'result': 3}

        bad = client.submit("sum", {"a": "seven", "b": 1}, max_attempts=1)
        try:
            bad.result(timeout=60)
        except JobFailed as failed:
            print("failed as expected:", failed.job.error)

        print(client.stats().jobs)


if __name__ == "__main__":
    main()
