"""Learning and rollout algorithms: collection, evaluation, BC, residual RL, PPO."""
