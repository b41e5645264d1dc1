"""Modality preprocessing: turn audio, video, point clouds and time series into C x H x W maps."""
