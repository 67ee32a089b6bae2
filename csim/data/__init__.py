"""Readers for the data directory layout (see ../shared/data/README.md) and the Lightning data module."""
