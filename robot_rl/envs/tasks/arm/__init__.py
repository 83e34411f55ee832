"""Arm manipulation tasks."""
