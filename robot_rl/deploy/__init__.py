"""Transport-free ROS 2 node logic, message mapping, rclpy and DDS transports (issue 6)."""
