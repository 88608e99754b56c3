"""Fixes: planned, approved, verified, reversible changes to a node or the cluster."""
