"""Simulator of Salesforce's login server and REST API (sObjects, sObject Collections, SOQL
query, limits) for Contact, Opportunity, OpportunityContactRole and Account."""

from __future__ import annotations

from sandbox.salesforce.app import create_app

__all__ = ["create_app"]
