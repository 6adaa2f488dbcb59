"""Tests of the hub server."""
