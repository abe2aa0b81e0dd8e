"""Health: is a release fit to serve? Everything that asks, and the answers' types.

- `verdict`: `CheckVerdict` and the `Checks` protocol, what strategies, rollback and previews see;
- `checks/`: the individual checks (HTTP, database, jobs, metrics), one attempt each, no scheduling;
- `loop`: the seed's pre-switch health flow, retries bounded by a deadline;
- `verification`: the post-switch checks, run concurrently under one deadline;
- `release_checks`: `ReleaseChecks`, the `Checks` the pipeline hands to a rollout.

Health never imports platforms, strategies, the pipeline or the CLI (an import-linter contract).
"""
