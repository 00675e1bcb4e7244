"""Explain: how a trained network reaches its answer.

Every layer's activations, attributions you can check (Integrated Gradients, SmoothGrad, LayerCAM, Grad-CAM,
occlusion; against a second class too), and where an input lands among the training digits. Written with
`tf.GradientTape`. Uses `inference`, `models`, `data` and the core.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "engine": ["BASELINES", "METHODS", "Explainer"],
        "explain_command": ["run_explain"],
        "explanation": ["ModelExplainer"],
        "graph": ["LayerActivation"],
        "occlusion": ["OcclusionExplainer"],
    },
)
