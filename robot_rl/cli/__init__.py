"""The ``robot-rl`` command: composes Hydra configs and calls the library; no logic of its own."""
