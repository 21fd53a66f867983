"""absl entry points: one thin module per experiment over ``runner``."""
