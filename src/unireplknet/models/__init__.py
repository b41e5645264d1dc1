"""Networks built around the unchanged UniRepLKNet (:mod:`unireplknet.model`) for inputs that are not images.

* :mod:`.points`: :class:`~.points.PointCloudNet`, a points -> map projection followed by the image model;
* :mod:`.forecast`: :class:`~.forecast.UniRepLKNetForecaster`, series embedding -> trunk -> linear head.

Their inputs are prepared by :mod:`unireplknet.modalities`.
"""
