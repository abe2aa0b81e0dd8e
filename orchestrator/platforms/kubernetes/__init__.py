"""Kubernetes through the official `kubernetes` client (DESIGN.md section 5).

`descriptor` is what the registry reads; it imports no SDK. One adapter (`adapter.KubernetesPlatform`)
runs every strategy: one Deployment per release, traffic moved by the Service selector and replica
counts. `manifest.py` states the naming and labelling conventions the user's Deployment and Service
follow; `cluster.py` the app in its namespace; `api.py` the client behind retries; `kubeconfig.py`
where the connection comes from; `proxy.py` the API server's service proxy; `rollout.py` waiting.
"""
