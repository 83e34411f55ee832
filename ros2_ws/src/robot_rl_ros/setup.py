"""ament_python package of the robot_rl ROS 2 nodes (``colcon build``; ``ros2 launch robot_rl_ros
arm_sim.launch.xml``). The node logic lives in the robot_rl Python package; these are its rclpy
entry points, the launch files and one parameter file per robot."""

from glob import glob

from setuptools import setup

PACKAGE = "robot_rl_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=[PACKAGE],
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.xml") + glob("launch/*.launch.yaml")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="robot_rl maintainers",
    maintainer_email="maintainers@robot-rl.dev",
    description="ROS 2 nodes of robot_rl: policy, safety filter, simulator bridge, recorder",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            f"{name} = {PACKAGE}.nodes:{name}"
            for name in (
                "policy_node",
                "recorder_node",
                "safety_node",
                "sim_bridge_node",
                "teleop_node",
            )
        ],
    },
)
