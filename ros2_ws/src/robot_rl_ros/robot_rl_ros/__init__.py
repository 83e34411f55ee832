"""rclpy entry points of the robot_rl nodes (the logic is in ``robot_rl.deploy``)."""
