"""Simulator of Zoho CRM's accounts server (OAuth refresh) and CRM API v8 (records, upsert,
paging with page tokens, field metadata, credits and concurrency limits)."""

from __future__ import annotations

from sandbox.zoho.app import create_app

__all__ = ["create_app"]
