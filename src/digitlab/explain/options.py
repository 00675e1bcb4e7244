"""The names an explanation can be asked for, without importing TensorFlow.

The server validates requests with them before the explainer is loaded.
"""

METHODS = ("ig", "smoothgrad", "layercam", "gradcam", "occlusion")
CAM_METHODS = ("layercam", "gradcam")  # class activation maps: they need a convolutional layer
BASELINES = ("black", "blur", "grey")
