"""The individual checks behind pre-switch health and post-switch verification.

`base` fixes the shape every check shares (one attempt in, one `Attempt` out); `http`,
`database`, `jobs` and `metrics` each build one kind. Scheduling (retries, deadline,
concurrency) lives in `health.loop` and `health.verification`, never in a check.
"""
