"""Canary analysis: what the data plane measured per release (`traffic`), the verdict on a canary
against its baseline in the same window (`judgement`, pure), and the phase webhooks (`webhooks`)."""
