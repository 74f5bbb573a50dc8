"""Simulator of HubSpot's CRM API (v3 objects, search, properties; v4 associations)."""

from __future__ import annotations

from sandbox.hubspot.app import create_app

__all__ = ["create_app"]
