"""From a checkpoint to steering and attention: the predictor, its backends, the ONNX export, the shipped models."""
