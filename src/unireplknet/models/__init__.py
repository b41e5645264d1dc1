"""Networks built around the unchanged UniRepLKNet (:mod:`unireplknet.model`) for inputs that are not images.

* :mod:`.points`: :class:`~.points.PointCloudNet`, a points -> map projection followed by the image model;
* :mod:`.forecast`: :class:`~.forecast.UniRepLKNetForecaster`, series embedding -> trunk -> linear head;
* :mod:`.grid_forecast`: :class:`~.grid_forecast.GridForecaster`, a gridded global field -> smp FPN over the
  backbone (circular in longitude) + a frozen per-grid-point linear path.

Their inputs are prepared by :mod:`unireplknet.modalities`.
"""
