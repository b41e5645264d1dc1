"""Analyses of trained or random models (``unireplknet analyze ...``): the effective receptive field."""
