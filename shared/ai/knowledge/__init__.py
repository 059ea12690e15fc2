"""Answers grounded in the platform's own documentation and catalog, with citations."""
