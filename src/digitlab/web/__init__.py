"""The draw page's client code, shared by every host: ES modules and CSS under `static/`, no build step.

`digitlab serve` serves `static/` at `/web/` beside its own page (which asks the server); `digitlab export --format
web` copies it with `site/index.html.j2` rendered into a static folder that runs preprocessing, the refusal score and
the model in the browser (ONNX Runtime Web); the notebook widget runs the same modules, bundled into one (its
backend asks the kernel). All extend one markup, `templates/page.html` (`render_page`).
Nothing here imports the rest of digitlab: it is package data with its paths.
"""

from pathlib import Path

STATIC = Path(__file__).parent / "static"  # the shared modules: drawing, rendering, preprocessing, backends
SITE = Path(__file__).parent / "site"  # what only the static export adds: its index.html.j2 and hosting README
TEMPLATES = Path(__file__).parent / "templates"  # the page's markup, which each host's page extends


def render_page(template: Path, web: str, fragment: bool = False) -> str:
    """A host's draw page: `template` (extending `templates/page.html`) rendered, its modules and CSS at `web`.

    Args:
        template: The host's Jinja2 template (`serving/templates/index.html`, `site/index.html.j2`,
            `notebook/templates/widget.html`).
        web: The URL prefix the shared `static/` files are served under, with its trailing slash ("/web/", "web/").
        fragment: Only the body's content, without the document around it (for a shadow root).

    Returns:
        The page's HTML.
    """
    import jinja2

    loader = jinja2.FileSystemLoader([str(template.parent), str(TEMPLATES)])
    env = jinja2.Environment(loader=loader, autoescape=True, keep_trailing_newline=True)
    return env.get_template(template.name).render(web=web, fragment=fragment)
