"""Teleoperation devices, mappings and recording sessions (issue 7)."""
