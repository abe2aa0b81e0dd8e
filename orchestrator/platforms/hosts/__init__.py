"""The `hosts` platform: the model of `local` (supervisor + proxy) on each of a set of servers, over SSH.

Modules: `descriptor` (what the registry knows of it), `factory` (config and secrets to an adapter),
`trust` (pinned host keys, the client key), `bundle` (the orchestrator as a zipapp for the hosts),
`install` (finding the host's Python, installing the bundle by digest), `connection` (one host:
sign in, the agent's JSON lines, SFTP), `agent` (what runs on a host, driving its local
supervisor), `release_files` (a release's snapshot as a tarball with its digests), `tunnel` (a
host's release reached through SSH for the pre-switch checks), `fleet` (every host at once:
connect, reconcile, switch), `switch` (a switch staged on a host, then fired), `order` (which
hosts a share moves: canary labels, groups), `systemd_unit` (the unit keeping a host's supervisor),
`host_image` and `image_upload` (an image release's image on a host, held to its digest),
`platform` (the adapter: start, switch, roll back across hosts).

On DigitalOcean: `droplets` (the `hosts.droplets` block), `droplet_api` (pydo calls), `discovery`
(tagged Droplets to hosts), `load_balancer` (the switch between two Droplet groups, planned as
data), `switch_record` (which group was last switched to, kept on the hosts), `droplet_groups` (the
adapter for two groups behind a load balancer or reserved IP).
"""

from __future__ import annotations
