"""Submit jobs to the handlers of handlers.py and see each way a job ends.

Run with a coordinator up and a bot that loads handlers.py (see its docstring).
BOTFLEET_SERVER and BOTFLEET_TOKEN say where the coordinator is and which token
to use.
"""

from botfleet.client import Client, JobFailed


def main() -> None:
    with Client() as client:
        # Async handler: its result.
        text = "the cat saw the dog and the cat"
        counted = client.submit("word_count", {"text": text, "top": 2})
        print("word_count:", counted.result(timeout=60))

        # Plain handler, in a thread.
        hashed = client.submit("digest", {"seed": "botfleet", "rounds": 20_000})
        print("digest:", hashed.result(timeout=60)["rounds"], "rounds")

        # A payload that does not fit fails at once, without a retry.
        bad = client.submit("word_count", {"txt": "a typo in the field name"})
        try:
            bad.result(timeout=60)
        except JobFailed as failed:
            attempts = failed.job.attempt
            print(f"invalid payload after {attempts} attempt:", failed.job.error)

        # Past its timeout_s, a job is cancelled: the plain handler sees it, stops.
        endless = {"seed": "x", "rounds": 100_000_000}
        slow = client.submit("digest", endless, timeout_s=1, max_attempts=1)
        try:
            slow.result(timeout=120)
        except JobFailed as failed:
            print("too slow:", failed.job.error)


if __name__ == "__main__":
    main()
