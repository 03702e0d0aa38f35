"""The nodes' rules without ROS: parameters, the command gate, diagnostics, replay pairing and evaluation."""
