"""The synthetic world for closed-loop driving: tracks, the vehicle, the simulator and its metrics (no ROS)."""
