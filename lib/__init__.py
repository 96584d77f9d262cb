"""Shared core of the sensor backend: configuration, catalogue, validation, storage."""
