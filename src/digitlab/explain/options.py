"""The names an explanation can be asked for, without importing TensorFlow (the server validates requests with
them before the explainer is loaded)."""

METHODS = ("ig", "smoothgrad", "gradcam", "occlusion")
BASELINES = ("black", "blur", "grey")
