"""Serving: the draw-a-digit page and its REST API (own routes and TensorFlow Serving's).

FastAPI with one router per area, micro-batching and the feedback folder. Uses `inference`, `models`, `data`
and the core.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "app": ["create_app"],
        "config": ["ServeConfig"],
        "requests": ["BadRequest"],
        "server": ["serve"],
    },
)
