"""Crash recovery: find runs that died, bring production back to a verified good release, settle them.

liveness.py   every run holds a session lock named by its deployment id while it runs
crashed.py    the ledger rows of runs that died (in_progress, lock free) and how they are settled
reconcile.py  what recovery does about them, in order (traffic, schema, verification, record)
pair.py       the preference pair for a crashed run (one per run, whatever recovery's retries)
cancel.py     SIGINT/SIGTERM: stop waiting, put traffic back, leave the rest to recovery
"""
