"""Fixtures shared by the suite (the queueing pytest plugin provides the database)."""
