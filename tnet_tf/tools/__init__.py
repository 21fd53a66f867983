"""Measurements and transformations of trained models: cost profiles and
compression."""
