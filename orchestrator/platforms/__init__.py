"""Platforms: where releases run. Each adapter implements `base.Platform`."""
