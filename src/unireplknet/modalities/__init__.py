"""Modality preprocessing: turn audio, video, point clouds and time series into C x H x W maps.

One subpackage per modality, each split by concern: ``io`` (decoding and file formats), ``transforms``
(preprocessing and augmentation), ``datasets`` (public dataset layouts) and ``demo`` (the bundled demo's
dataset; where its files come from is :mod:`unireplknet.data.sources`). The networks built around the
backbone for these inputs live in :mod:`unireplknet.models`.
"""
