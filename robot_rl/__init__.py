"""robot_rl: from demonstrations to a safe deployed robot policy."""

__version__ = "0.1.0"
