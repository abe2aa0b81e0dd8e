"""Canary analysis: the verdict on a canary against its baseline in the same window (`judgement`,
pure), counters read from Prometheus (`prometheus`), and the phase webhooks (`webhooks`).

What the data plane measured is the platforms' (`platforms.traffic`) and the canary's configuration
is the contract's (`contract.canary`): the canary reads both, and neither imports it."""
