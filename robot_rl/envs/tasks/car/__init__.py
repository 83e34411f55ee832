"""RC car racing: single-track dynamics, tracks from data, and an analytic lidar."""
