"""Acceptance tests: the users' scenarios (docs: /work/shared/CONTEXT.md), public API only."""
