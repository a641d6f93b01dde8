"""One module per dashboard page; each exposes ``build(store) -> Viewable``."""
